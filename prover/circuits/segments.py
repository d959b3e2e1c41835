"""Segmented circuits: one model cut at graph points into K ordinary circuits.

A model too large for one prover (memory, or time on one machine) is cut where a single
tensor carries everything the rest of the graph needs. Each segment is an ordinary circuit
(``plan_compile`` + ``build_circuit`` on the segment's ONNX file, calibrated on the float
tensors at its cut), and consecutive segments are linked by what their proofs expose of
the tensor that crosses the cut:

* ``polycommit``: a KZG commitment to the tensor's column (not in the instances: the first
  points of the proof). Nearly free in rows, but a commitment is to a polynomial over the
  SRS of 2^k points, so every segment of a chain must share one k: the smaller ones are
  laid out again on the largest one's rows.
* ``hashed``: a Poseidon hash of the tensor as a public instance (the output hash of
  segment i equals the input hash of segment i+1). Each segment keeps its own k, at the
  cost of the hash's rows.

Both need the same integers on both sides of a cut, so one fixed-point scale is pinned for
every segment (ezkl rebases each output to the input scale); the composite's outputs are
checked against onnxruntime like an unsplit circuit's.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import ezkl
import numpy as np
import onnx
from onnx.utils import Extractor

from prover.circuits.backend import setup_keys
from prover.circuits.compiler import (
    EZKL_VERSION,
    CompileOptions,
    CompilePlan,
    build_circuit,
    compile_limits,
    plan_compile,
    store_model,
)
from prover.circuits.data import Sample, to_ezkl_input
from prover.circuits.estimate import logrows_within
from prover.circuits.intake import FloatReference, ModelInfo
from prover.circuits.sandbox import run_limited
from prover.circuits.search import RESERVED_ROWS, Progress, Visibility
from prover.circuits.shapes import measure_fixed
from prover.circuits.srs import resolve_srs, srs_source
from prover.circuits.witness import generate_witness, rescaled_outputs, write_input
from prover.config import Settings
from prover.errors import CircuitError, InvalidInputError
from prover.store import ArtifactStore, canonical_digest, now_iso

SEGMENTED_FORMAT = 1
Link = Literal["polycommit", "hashed"]
LINKS: tuple[Link, ...] = ("polycommit", "hashed")
LinkChoice = Literal["auto", "polycommit", "hashed"]
# Rows of ezkl's Poseidon chip per hashed value (ezkl 23.0.5: 658 rows hash 16 values).
_POSEIDON_ROWS_PER_VALUE = 41
# A hashed segment's rows cost more: Poseidon adds its own columns (measured: about 1.5-2x
# the prove time of the same segment with a polycommit link, at equal logrows).
_HASHED_COST_FACTOR = 2


# --- cut points ---------------------------------------------------------------------------


def cut_candidates(model: onnx.ModelProto) -> list[str]:
    """Tensors that alone carry everything the rest of the graph needs, in graph order.

    After each node, the live tensors are those computed so far (or the model inputs) that
    a later node or the model's outputs still read; constants do not count (a segment
    carries its own). A point where exactly one non-output tensor is live is a cut.
    """
    graph = model.graph
    constant = {t.name for t in graph.initializer}
    for node in graph.node:
        if all(not i or i in constant for i in node.input):
            constant.update(o for o in node.output if o)
    last_use: dict[str, int] = {}
    for j, node in enumerate(graph.node):
        for name in node.input:
            last_use[name] = j
    outputs = {o.name for o in graph.output}
    live = {i.name for i in graph.input if i.name not in constant}
    found: list[str] = []
    for j, node in enumerate(graph.node[:-1]):
        live |= {o for o in node.output if o and o not in constant}
        live = {t for t in live if t in outputs or last_use.get(t, -1) > j}
        if len(live) == 1 and not live & outputs:
            (tensor,) = live
            if tensor not in found and _shaped(model, tensor):
                found.append(tensor)
    return found


def _shaped(model: onnx.ModelProto, tensor: str) -> bool:
    for value in model.graph.value_info:
        if value.name == tensor:
            dims = value.type.tensor_type.shape.dim
            return bool(dims) and all(d.HasField("dim_value") for d in dims)
    return False


def _bounds(model: onnx.ModelProto, cuts: list[str]) -> list[tuple[list[str], list[str]]]:
    """(input names, output names) of each segment the cuts make."""
    constant = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in constant]
    outputs = [o.name for o in model.graph.output]
    edges = [inputs, *[[c] for c in cuts], outputs]
    return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def _segment_model(
    model: onnx.ModelProto, inputs: list[str], outputs: list[str]
) -> onnx.ModelProto:
    return Extractor(model).extract_model(inputs, outputs)


def _prefix_costs(model: onnx.ModelProto, candidates: list[str]) -> tuple[list[int], int]:
    """Estimated circuit cells up to each candidate cut, and of the whole model: at a cut
    every earlier node is upstream of it (one tensor carries the state), so a prefix is
    the cells of the nodes before it in graph order."""
    sizes = measure_fixed(model)
    produced_at = {o: j for j, node in enumerate(model.graph.node) for o in node.output}
    running = np.cumsum([0, *sizes.node_cells])
    prefix = [int(running[min(produced_at[c] + 1, len(running) - 1)]) for c in candidates]
    return prefix, sizes.cells


def balanced_cuts(prefix: list[int], total: int, parts: int) -> list[int]:
    """Indices of ``parts - 1`` candidates minimising the largest segment's cost (DP)."""
    points = [0, *prefix, total]
    n = len(points)
    inf = float("inf")
    # best[k][j]: the smallest max cost of k segments covering 0..points[j], ending at j.
    best = [[inf] * n for _ in range(parts + 1)]
    back = [[0] * n for _ in range(parts + 1)]
    best[0][0] = 0
    for k in range(1, parts + 1):
        for j in range(1, n):
            for i in range(j):
                cost = max(best[k - 1][i], points[j] - points[i])
                if cost < best[k][j]:
                    best[k][j], back[k][j] = cost, i
    chosen, j = [], n - 1
    for k in range(parts, 1, -1):
        j = back[k][j]
        chosen.append(j - 1)
    return sorted(chosen)


def estimate_rows(segment_paths: list[str]) -> list[int]:
    """ezkl's row count for each segment file at its default settings (run in a child)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="prover-rows-") as tmp:
        for i, path in enumerate(segment_paths):
            out = Path(tmp) / f"settings{i}.json"
            args = ezkl.PyRunArgs()
            args.variables = [("batch_size", 1)]  # type: ignore[attr-defined]
            ezkl.gen_settings(path, str(out), py_run_args=args)
            rows.append(int(json.loads(out.read_text())["num_rows"]))
    return rows


def _needed_logrows(rows: int) -> int:
    return math.ceil(math.log2(rows + RESERVED_ROWS))


def segment_logrows(model: onnx.ModelProto, cuts: list[str], settings: Settings) -> list[int]:
    """The logrows each segment needs, estimated from ezkl's layout at default settings."""
    with tempfile.TemporaryDirectory(prefix="prover-cuts-") as tmp:
        paths = []
        for i, (inputs, outputs) in enumerate(_bounds(model, cuts)):
            path = Path(tmp) / f"segment{i}.onnx"
            onnx.save(_segment_model(model, inputs, outputs), str(path))
            paths.append(str(path))
        rows = run_limited(estimate_rows, paths, limits=compile_limits(settings))
    return [_needed_logrows(r) for r in rows]


@dataclass(frozen=True)
class Cuts:
    """Where a model is cut, and the logrows each segment is estimated to need."""

    tensors: tuple[str, ...]
    logrows: tuple[int, ...]


def plan_cuts(
    model: onnx.ModelProto, segments: int | None, max_logrows: int | None, settings: Settings
) -> Cuts:
    """Cuts of ``model`` (``ModelInfo.fixed_graph``) for ``segments`` segments of balanced
    estimated cost; with only ``max_logrows``, the fewest segments whose estimated rows each
    fit 2^max_logrows (no cut when the whole model does).

    Raises ``InvalidInputError`` when the model has too few cut points for K, or when a
    segment cannot fit ``max_logrows`` (naming the segment and the rows it needs).
    """
    candidates = cut_candidates(model)
    if segments is None and max_logrows is None:
        raise InvalidInputError("give the number of segments or a max_logrows to split to")
    if segments is not None and not 1 <= segments <= len(candidates) + 1:
        raise InvalidInputError(
            f"the model can be cut into at most {len(candidates) + 1} segments (it has "
            f"{len(candidates)} single-tensor cut points: {candidates[:8]}); asked for {segments}",
            cut_points=len(candidates),
        )
    prefix, total = _prefix_costs(model, candidates)
    options = [segments] if segments is not None else range(1, len(candidates) + 2)
    needed: list[int] = []
    for parts in options:
        cuts = [candidates[i] for i in balanced_cuts(prefix, total, parts)]
        needed = segment_logrows(model, cuts, settings)
        if max_logrows is None or max(needed) <= max_logrows:
            return Cuts(tuple(cuts), tuple(needed))
    worst = int(np.argmax(needed))
    raise InvalidInputError(
        f"segment {worst} of {len(needed)} needs about 2^{needed[worst]} rows, over max_logrows "
        f"{max_logrows}"
        + (
            "; ask for more segments"
            if segments is not None
            else "; the model has no cut "
            "point inside it (cuts are where one tensor carries the whole state)"
        ),
        segment=worst,
        needed_logrows=needed[worst],
        max_logrows=max_logrows,
    )


def split_saving(model: onnx.ModelProto, cuts: Cuts, settings: Settings) -> str | None:
    """Why splitting at ``cuts`` saves nothing, or ``None`` when it saves: a prover's memory
    and time follow its circuit's 2^logrows rows, so a split pays only when its largest
    segment needs fewer rows than the whole model (every segment of a polycommit chain is
    laid out on the largest one's rows, and a hashed one adds Poseidon's)."""
    (whole,) = segment_logrows(model, [], settings)
    largest = max(cuts.logrows)
    if largest < whole:
        return None
    return (
        f"this split saves nothing: its largest segment needs about 2^{largest} rows "
        f"(estimated per segment: {list(cuts.logrows)}), as many as the whole model "
        f"(2^{whole}), so each segment's prover needs as much memory and time as one unsplit "
        "proof; compile it unsplit, or ask for more segments"
    )


def _elements(model: onnx.ModelProto, tensor: str) -> int:
    value = next(v for v in model.graph.value_info if v.name == tensor)
    return math.prod(d.dim_value for d in value.type.tensor_type.shape.dim)


def choose_link(model: onnx.ModelProto, cuts: Cuts) -> tuple[Link, str]:
    """(link, why): polycommit unless giving every segment the largest one's logrows costs
    more rows than hashing the cut tensors (Poseidon rows per value, weighted for its extra
    columns). polycommit costs one unblinded column per cut but one k for the whole chain;
    hashed lets each segment keep its own k but hashes every value crossing a cut."""
    needed = cuts.logrows
    sizes = [_elements(model, c) for c in cuts.tensors]
    poly = len(needed) * 2 ** max(needed)
    hashed = 0
    for i, k in enumerate(needed):
        values = (sizes[i - 1] if i > 0 else 0) + (sizes[i] if i < len(sizes) else 0)
        hash_k = _needed_logrows(_POSEIDON_ROWS_PER_VALUE * values)
        hashed += _HASHED_COST_FACTOR * 2 ** max(k, hash_k)
    link: Link = "polycommit" if poly <= hashed else "hashed"
    why = (
        f"estimated segment logrows {list(needed)}, cut sizes {sizes}: polycommit costs ~{poly} "
        f"rows (every segment at 2^{max(needed)}), hashed ~{hashed} (weighted x"
        f"{_HASHED_COST_FACTOR} for Poseidon's columns)"
    )
    return link, why


# --- plan and build ------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentedPlan:
    """A checked segmented compile request: model, calibration, cuts and the composite id."""

    info: ModelInfo
    samples: list[Sample]
    source: str
    calibration_digest: str
    cuts: tuple[str, ...]
    link: Link
    circuit_id: str
    link_reason: str = "asked for"
    estimated_logrows: tuple[int, ...] = ()  # per segment, from ezkl's default layout
    note: str | None = None  # why the split saves nothing (it was asked for all the same)


def plan_segmented(
    model_path: Path,
    calibration: Any | None,
    options: CompileOptions,
    settings: Settings,
    segments: int | None = None,
    max_logrows: int | None = None,
    link: LinkChoice = "auto",
    cuts: Cuts | None = None,
    base: CompilePlan | None = None,
) -> SegmentedPlan:
    """Check the request, choose the cuts (unless given: ``plan_cuts``'s) and, for
    ``link="auto"``, the link (see ``choose_link``), and derive the composite circuit id.
    ``base``: the whole model's ``plan_compile`` of this same request, when the caller
    has it already (intake runs in a sandboxed child: once per request is enough)."""
    if link not in ("auto", *LINKS):
        raise InvalidInputError(f"link {link!r} is not one of auto, {', '.join(LINKS)}")
    if options.strategy != "search":
        raise InvalidInputError(
            "a segmented circuit needs the settings search: its segments share one pinned "
            "scale, which ezkl's own calibration (ezkl-default) cannot keep"
        )
    if base is None:
        base = plan_compile(model_path, calibration, options, settings)
    if base.info.unchecked is not None:
        raise InvalidInputError(
            f"cannot split this model: onnxruntime cannot run it ({base.info.unchecked}), and "
            "the segments are calibrated on the float tensors at each cut"
        )
    graph = base.info.fixed_graph()
    cuts = cuts or plan_cuts(graph, segments, max_logrows, settings)
    if not cuts.tensors:
        raise InvalidInputError(
            "the model fits max_logrows in one circuit; compile it unsplit instead"
        )
    # A split to fit max_logrows saves by construction; one into K segments is checked.
    note = split_saving(graph, cuts, settings) if max_logrows is None else None
    chosen: Link
    if link == "auto":
        chosen, why = choose_link(graph, cuts)
    else:
        chosen, why = link, "asked for"
    circuit_id = canonical_digest(
        {
            "format": SEGMENTED_FORMAT,
            "type": "segmented",
            "ezkl": EZKL_VERSION,
            "model": base.info.model_id,
            "calibration": base.calibration_digest,
            "options": asdict(options),
            "cuts": list(cuts.tensors),
            "link": chosen,
            "srs": srs_source(settings.srs_path, settings.env == "production"),
        }
    )
    return SegmentedPlan(
        base.info,
        base.samples,
        base.source,
        base.calibration_digest,
        cuts.tensors,
        chosen,
        circuit_id,
        why,
        cuts.logrows,
        note,
    )


def _segment_visibility(options: CompileOptions, index: int, count: int, link: Link) -> Visibility:
    user = options.visibility
    return Visibility(
        input=user.input if index == 0 else link,
        param=user.param,
        output=user.output if index == count - 1 else link,
    )


def _write_segments(info: ModelInfo, cuts: tuple[str, ...], directory: Path) -> list[Path]:
    model = info.fixed_graph()
    paths = []
    for i, (inputs, outputs) in enumerate(_bounds(model, list(cuts))):
        path = directory / f"segment{i}.onnx"
        onnx.save(_segment_model(model, inputs, outputs), str(path))
        paths.append(path)
    return paths


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


def _settings_of(store: ArtifactStore, circuit: dict[str, Any]) -> dict[str, Any]:
    settings: dict[str, Any] = json.loads(
        (store.path("circuits", circuit["id"]) / "settings.json").read_text()
    )
    return settings


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
        left = _settings_of(store, records[i])["model_output_scales"]
        right = _settings_of(store, records[i + 1])["model_input_scales"]
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
        circuit_settings = _settings_of(store, circuit)
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


# --- running the chain ---------------------------------------------------------------------


def _polycommit(circuit: dict[str, Any]) -> bool:
    return "polycommit" in circuit["visibility"].values()


def _next_input(store: ArtifactStore, circuit: dict[str, Any], witness: dict) -> Sample:
    """A segment's outputs as the next one's float input: the exact fixed-point values
    (q / 2^scale), which the next segment quantizes back to the same integers."""
    scales = _settings_of(store, circuit)["model_output_scales"]
    return [
        np.asarray([ezkl.felt_to_float(f, scale) for f in flat], dtype=np.float64)
        for flat, scale in zip(witness["outputs"], scales, strict=True)
    ]


def run_chain(
    store: ArtifactStore,
    segments: list[dict[str, Any]],
    sample: Sample,
    directory: Path,
    commitments: bool = True,
) -> list[dict[str, Any]]:
    """Witness every segment in order on one input, each fed the previous one's outputs;
    files under ``directory/segment-<i>/``. Returns per segment its paths and witness.

    ``commitments``: compute polycommit commitments (needs the vk and SRS; skipped for
    accuracy checks)."""
    steps = []
    current = sample
    for i, circuit in enumerate(segments):
        cdir = store.path("circuits", circuit["id"])
        sdir = directory / f"segment-{i}"
        sdir.mkdir(parents=True, exist_ok=True)
        commit = commitments and _polycommit(circuit)
        started = time.perf_counter()
        input_path = write_input(sdir / "input.json", [current])
        witness = generate_witness(
            cdir / "model.compiled",
            input_path,
            sdir / "witness.json",
            cdir / "vk.key" if commit else None,
            store.srs_path(circuit) if commit else None,
        )
        steps.append(
            {
                "index": i,
                "input": input_path,
                "witness_path": sdir / "witness.json",
                "witness": witness,
                "witness_s": round(time.perf_counter() - started, 4),
            }
        )
        current = _next_input(store, circuit, witness)
    return steps


def link_values(witness: dict, link: str) -> dict[str, int]:
    """How many link values a segment's proof exposes for its inputs, params and outputs:
    commitment points at the head of the proof (polycommit), or hash instances (hashed)."""
    field_name = "polycommit" if link == "polycommit" else "poseidon_hash"
    counts = {}
    for part in ("inputs", "params", "outputs"):
        found = (witness.get(f"processed_{part}") or {}).get(field_name) or []
        counts[part] = sum(len(points) for points in found) if link == "polycommit" else len(found)
    return counts


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


def plan_any(
    model_path: Path,
    calibration: Any | None,
    options: CompileOptions,
    settings: Settings,
    segments: int | None = None,
    max_logrows: int | None = None,
    max_memory_bytes: int | None = None,
) -> CompilePlan | SegmentedPlan:
    """The plan of a compile request: one circuit, or the model in segments (``segments``
    of them, or as few as keep each within 2^``max_logrows`` rows and a proof within
    ``max_memory_bytes``: a worker's memory, see ``estimate.logrows_within``). A model
    that fits within those bounds unsplit is one circuit."""
    if max_memory_bytes is not None:
        fitting = logrows_within(max_memory_bytes)
        max_logrows = fitting if max_logrows is None else min(max_logrows, fitting)
    plan = plan_compile(model_path, calibration, options, settings)  # intake first
    if segments is None and max_logrows is None:
        return plan
    graph = plan.info.fixed_graph()
    cuts = plan_cuts(graph, segments, max_logrows, settings)
    if not cuts.tensors:
        return plan
    return plan_segmented(
        model_path, calibration, options, settings, segments, max_logrows, cuts=cuts, base=plan
    )


def build_any(
    plan: CompilePlan | SegmentedPlan,
    options: CompileOptions,
    store: ArtifactStore,
    settings: Settings,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """``build_segmented`` or ``build_circuit``, as ``plan_any`` planned."""
    if isinstance(plan, SegmentedPlan):
        return build_segmented(plan, options, store, settings, progress)
    return build_circuit(plan, options, store, settings, progress)


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
        paths = _write_segments(plan.info, plan.cuts, Path(tmp))
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
