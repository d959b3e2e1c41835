"""Building a segmented circuit: every segment an ordinary circuit at one pinned scale
(the smallest at which the segments and the composite stay within the tolerance), laid
out on one logrows for polycommit links, and the composite's record with its accuracy
against onnxruntime.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import ezkl
import numpy as np

from prover.circuits.backend import setup_keys
from prover.circuits.compiler import (
    EZKL_VERSION,
    CompileOptions,
    build_circuit,
    compile_limits,
    plan_compile,
    store_model,
)
from prover.circuits.cuts import write_segments
from prover.circuits.data import Sample, to_ezkl_input
from prover.circuits.intake import FloatReference, ModelInfo
from prover.circuits.links import Link, link_values
from prover.circuits.progress import Progress
from prover.circuits.sandbox import run_limited
from prover.circuits.search import Visibility
from prover.circuits.segment_chain import run_chain, stored_settings
from prover.circuits.segments import SEGMENTED_FORMAT, SegmentedPlan
from prover.circuits.srs import resolve_srs, srs_source
from prover.circuits.witness import rescaled_outputs
from prover.config import Settings
from prover.errors import CircuitError
from prover.store import ArtifactStore, canonical_digest, now_iso


def _segment_visibility(options: CompileOptions, index: int, count: int, link: Link) -> Visibility:
    user = options.visibility
    return Visibility(
        input=user.input if index == 0 else link,
        param=user.param,
        output=user.output if index == count - 1 else link,
    )


def _cut_calibration(
    info: ModelInfo, paths: list[Path], samples: list[Sample]
) -> list[list[Sample]]:
    """Each segment's float inputs: the samples, then onnxruntime's tensors at each cut."""
    per_segment: list[list[Sample]] = []
    current = [
        [np.asarray(a, dtype=t.dtype).reshape(t.shape) for a, t in zip(s, info.inputs, strict=True)]
        for s in samples
    ]
    for path in paths:
        per_segment.append([[a.reshape(-1).astype(np.float64) for a in s] for s in current])
        reference = FloatReference(path, [])
        names = [i.name for i in reference.session.get_inputs()]
        current = [
            [np.asarray(o) for o in reference.session.run(None, dict(zip(names, s, strict=True)))]
            for s in current
        ]
    return per_segment


def _scales(options: CompileOptions) -> list[int]:
    """The scales to pin, in order: the space's, then its wider ones."""
    return sorted(set(options.space.scales)) + list(options.space.wider_scales())


def _compile_segments(
    plan: SegmentedPlan,
    options: CompileOptions,
    paths: list[Path],
    calibration: list[list[Sample]],
    scale: int,
    store: ArtifactStore,
    settings: Settings,
    say: Progress,
) -> list[dict[str, Any]]:
    """Each segment as an ordinary circuit at the pinned scale (``CircuitError`` when one
    cannot reach the tolerance at it); for polycommit links, all on one logrows."""
    records = []
    count = len(paths)
    for i, path in enumerate(paths):
        seg_options = replace(
            options,
            visibility=_segment_visibility(options, i, count, plan.link),
            space=replace(options.space, scales=(scale,)),
        )
        say(f"segment {i + 1}/{count} at scale {scale}", 0.05 + 0.8 * i / count)
        seg_plan = plan_compile(path, to_ezkl_input(calibration[i]), seg_options, settings)
        records.append(build_circuit(seg_plan, seg_options, store, settings))
    if plan.link == "polycommit":
        logrows = max(int(r["logrows"]) for r in records)
        records = [resize(store, r, logrows, settings) for r in records]
    for i in range(count - 1):
        left = stored_settings(store, records[i])["model_output_scales"]
        right = stored_settings(store, records[i + 1])["model_input_scales"]
        if left != right:
            raise CircuitError(
                f"segment {i}'s output scale {left} differs from segment {i + 1}'s input "
                f"scale {right}; the cut cannot be linked"
            )
    return records


def resize(
    store: ArtifactStore, circuit: dict[str, Any], logrows: int, settings: Settings
) -> dict[str, Any]:
    """The same circuit laid out on 2^logrows rows (a polycommit link commits over the SRS
    of 2^k points, so both sides must share k); itself when already that size."""
    if int(circuit["logrows"]) == logrows:
        return circuit
    resized_id = canonical_digest({"resized": circuit["id"], "logrows": logrows})
    if store.exists("circuits", resized_id):
        return store.read_record("circuits", resized_id)
    return run_limited(
        resize_in_process, store, circuit, logrows, resized_id, settings,
        limits=compile_limits(settings),
    )  # fmt: skip


def resize_in_process(
    store: ArtifactStore,
    circuit: dict[str, Any],
    logrows: int,
    resized_id: str,
    settings: Settings,
) -> dict[str, Any]:
    """``resize``'s work: recompile with the larger logrows and set up new keys."""
    model = store.path("models", circuit["model_id"]) / "model.onnx"
    with store.create("circuits", resized_id) as out:
        circuit_settings = stored_settings(store, circuit)
        circuit_settings["run_args"]["logrows"] = logrows
        (out / "settings.json").write_text(json.dumps(circuit_settings))
        ezkl.compile_circuit(str(model), str(out / "model.compiled"), str(out / "settings.json"))
        srs = resolve_srs(logrows, settings.data_dir, settings.srs_path)
        _, _, setup_s = setup_keys(
            out / "model.compiled", srs.path, out, bool(circuit.get("reusable_verifier"))
        )
        record = {
            **circuit,
            "id": resized_id,
            "created_at": now_iso(),
            "logrows": logrows,
            "resized_from": circuit["id"],
            "srs": srs.to_dict(settings.data_dir),
            "dev_srs": srs.dev,
            "settings": circuit_settings["run_args"],
            "timings": {**circuit["timings"], "setup_s": round(setup_s, 4)},
            "pk_bytes": (out / "pk.key").stat().st_size,
            "vk_bytes": (out / "vk.key").stat().st_size,
        }
        (out / "record.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    return record


def _accuracy(
    store: ArtifactStore, segments: list[dict[str, Any]], plan: SegmentedPlan, directory: Path
) -> dict[str, Any]:
    """The composite's outputs (segment after segment) against onnxruntime's, over the
    calibration samples."""
    reference = FloatReference(plan.info.path, plan.info.inputs)
    errors, scale, agree = [], 1.0, []
    for n, sample in enumerate(plan.samples):
        steps = run_chain(store, segments, sample, directory / f"sample-{n}", commitments=False)
        got = rescaled_outputs(steps[-1]["witness"], plan.info.outputs)
        expected = reference.run(sample)
        for g, e in zip(got, expected, strict=True):
            errors.append(float(np.max(np.abs(g - e.reshape(g.shape)))) if e.size else 0.0)
            scale = max(scale, float(np.max(np.abs(e))) if e.size else 0.0)
        if expected[0].size > 1:
            agree.append(int(np.argmax(got[0])) == int(np.argmax(expected[0])))
    max_err = max(errors) if errors else 0.0
    return {
        "status": "checked",
        "max_abs_error": max_err,
        "relative_error": max_err / scale,
        "argmax_agreement": float(np.mean(agree)) if agree else None,
        "samples": len(plan.samples),
    }


def build_segmented(
    plan: SegmentedPlan,
    options: CompileOptions,
    store: ArtifactStore,
    settings: Settings,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Compile every segment (ordinary circuits in the store) and publish the composite
    circuit record; answered from the store when the same request was built before."""
    say = progress or (lambda _m, _f: None)
    if store.exists("circuits", plan.circuit_id):
        say("cached", 1.0)
        return {**store.read_record("circuits", plan.circuit_id), "cached": True}
    started = time.perf_counter()
    store_model(store, plan.info)
    with tempfile.TemporaryDirectory(prefix="prover-segments-") as tmp:
        paths = write_segments(plan.info.fixed_graph(), list(plan.cuts), Path(tmp))
        calibration = _cut_calibration(plan.info, paths, plan.samples)
        segments, accuracy, scale = _first_accurate(
            plan, options, paths, calibration, store, settings, say, Path(tmp)
        )
        say("link commitments", 0.95)
        steps = run_chain(store, segments, plan.samples[0], Path(tmp) / "links")
        counts = [link_values(s["witness"], plan.link) for s in steps]
    record = _record(plan, options, segments, counts, accuracy, scale, settings)
    record["timings"] = {"total_s": round(time.perf_counter() - started, 3)}
    store.save_record("circuits", plan.circuit_id, record)
    say("done", 1.0)
    return {**record, "cached": False}


def _first_accurate(
    plan: SegmentedPlan,
    options: CompileOptions,
    paths: list[Path],
    calibration: list[list[Sample]],
    store: ArtifactStore,
    settings: Settings,
    say: Progress,
    directory: Path,
) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
    """(segments, composite accuracy, scale) at the smallest scale where every segment and
    the composite stay within the tolerance."""
    failures = []
    for scale in _scales(options):
        try:
            segments = _compile_segments(
                plan, options, paths, calibration, scale, store, settings, say
            )
        except CircuitError as exc:
            failures.append(f"scale {scale}: {exc.message}")
            continue
        accuracy = _accuracy(store, segments, plan, directory / f"accuracy-{scale}")
        if accuracy["relative_error"] <= options.tolerance:
            return segments, accuracy, scale
        failures.append(
            f"scale {scale}: the composite's relative error {accuracy['relative_error']:.4g} "
            f"exceeds the tolerance {options.tolerance}"
        )
    raise CircuitError(
        "no pinned scale gives accurate segments and an accurate composite: " + "; ".join(failures),
        failures=failures,
    )


def _record(
    plan: SegmentedPlan,
    options: CompileOptions,
    segments: list[dict[str, Any]],
    counts: list[dict[str, int]],
    accuracy: dict[str, Any],
    scale: int,
    settings: Settings,
) -> dict[str, Any]:
    return {
        "id": plan.circuit_id,
        "type": "segmented",
        "format": SEGMENTED_FORMAT,
        "link": plan.link,
        "link_reason": plan.link_reason,
        "model_id": plan.info.model_id,
        "model_name": plan.info.path.name,
        "ezkl_version": EZKL_VERSION,
        "created_at": now_iso(),
        "scale": scale,
        "cuts": list(plan.cuts),
        "estimated_logrows": list(plan.estimated_logrows),
        **({"note": plan.note} if plan.note else {}),
        "segments": [
            {
                "index": i,
                "circuit_id": s["id"],
                "model_id": s["model_id"],
                "logrows": s["logrows"],
                "inputs": s["inputs"],
                "outputs": s["outputs"],
                "link_values": counts[i],
                "pk_bytes": s["pk_bytes"],
            }
            for i, s in enumerate(segments)
        ],
        "links": [{"from": i, "to": i + 1, "tensors": [cut]} for i, cut in enumerate(plan.cuts)],
        "inputs": [t.to_dict() for t in plan.info.inputs],
        "outputs": [t.to_dict() for t in plan.info.outputs],
        "logrows": max(int(s["logrows"]) for s in segments),
        "dev_srs": any(bool(s["dev_srs"]) for s in segments),
        "visibility": asdict(options.visibility),
        "tolerance": options.tolerance,
        "accuracy": accuracy,
        "calibration": {
            "source": plan.source,
            "samples": len(plan.samples),
            "digest": plan.calibration_digest,
        },
        "srs_source": srs_source(settings.srs_path, settings.env == "production"),
    }
