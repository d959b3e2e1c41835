"""Prove the digits LeNet in segments and compare its proven accuracy with the float model's.

The unsplit circuit needs over 2^19 rows (ezkl's ``gen_settings`` count), more than one
modest prover should hold; cut at single-tensor points into segments of at most
2^max_logrows rows each, it compiles and proves segment by segment. For N test images the
script proves the composite (every segment, every link checked), then reports how often its
argmax agrees with onnxruntime's and with the label, the compile and prove seconds per
segment, and the peak memory. Results go to metrics.json ("segmented") and RESULTS.md.

    RAYON_NUM_THREADS=1 python models/digits_lenet/prove_segments.py --images 4
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import ezkl
import numpy as np
import onnxruntime as ort
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE.parent))
from digits import digits_split  # noqa: E402

from prover.circuits.compiler import CompileOptions  # noqa: E402
from prover.circuits.search import SearchSpace  # noqa: E402
from prover.circuits.segments import build_segmented, plan_segmented  # noqa: E402
from prover.config import Settings  # noqa: E402
from prover.proving.composite import prove_composite, verify_composite  # noqa: E402
from prover.proving.proofs import plan_proof  # noqa: E402
from prover.store import ArtifactStore  # noqa: E402

MODEL = HERE / "model.onnx"
# One pinned scale, one structure: each segment's compile is then one calibration, one
# compile and one key setup (the search's other candidates would multiply that by K).
OPTIONS = CompileOptions(space=SearchSpace(scales=(10,), legs=(2,), inner_cols=(2,)), measure_top=1)


def unsplit_rows(model: Path) -> dict[str, Any]:
    """ezkl's row count for the whole model at its default run args (no calibration)."""
    with tempfile.TemporaryDirectory(prefix="lenet-rows-") as tmp:
        args = ezkl.PyRunArgs()
        args.variables = [("batch_size", 1)]  # type: ignore[attr-defined]
        started = time.perf_counter()
        ezkl.gen_settings(str(model), f"{tmp}/settings.json", py_run_args=args)
        settings = json.loads(Path(f"{tmp}/settings.json").read_text())
    rows = int(settings["num_rows"])
    return {
        "num_rows": rows,
        "needed_logrows": math.ceil(math.log2(rows)),
        "gen_settings_s": round(time.perf_counter() - started, 2),
    }


def float_predictions(model: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.array(
        [int(np.argmax(session.run(None, {name: xi.reshape(1, 1, 8, 8)})[0])) for xi in x]
    )


class PeakRss:
    """Peak resident memory of this process and of its largest descendant, polled: compiles
    run in children of the sandbox's zygote, which ``getrusage`` never sees."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.self_bytes = self.child_bytes = 0
        self.interval_s = interval_s
        threading.Thread(target=self._poll, daemon=True).start()

    def _poll(self) -> None:
        me = psutil.Process()
        while True:
            self.self_bytes = max(self.self_bytes, me.memory_info().rss)
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    self.child_bytes = max(self.child_bytes, child.memory_info().rss)
            time.sleep(self.interval_s)

    def mib(self) -> dict[str, float]:
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        return {
            "self": round(max(own, self.self_bytes) / 2**20, 1),
            "largest_child": round(self.child_bytes / 2**20, 1),
        }


def segment_table(store: ArtifactStore, circuit: dict[str, Any]) -> list[dict[str, Any]]:
    """Per segment: logrows, ezkl's rows, and its compile seconds (plus a resize, if any)."""
    rows = []
    for entry in circuit["segments"]:
        record = store.read_record("circuits", entry["circuit_id"])
        settings = json.loads((store.path("circuits", record["id"]) / "settings.json").read_text())
        compile_s = record["timings"].get("total_s")
        if record.get("resized_from"):
            original = store.read_record("circuits", record["resized_from"])
            compile_s = (original["timings"].get("total_s") or 0) + record["timings"]["setup_s"]
        rows.append(
            {
                "index": entry["index"],
                "logrows": entry["logrows"],
                "num_rows": int(settings["num_rows"]),
                "scale": int(settings["run_args"]["input_scale"]),
                "compile_s": round(compile_s, 1) if compile_s is not None else None,
                "pk_mib": round(entry["pk_bytes"] / 2**20, 1),
            }
        )
    return rows


def compile_segments(
    store: ArtifactStore, settings: Settings, max_logrows: int
) -> tuple[dict[str, Any], float]:
    def say(message: str, fraction: float) -> None:
        print(f"  [{time.strftime('%H:%M:%S')}] compile {fraction:.0%} {message}", flush=True)

    calibration = json.loads((HERE / "calibration.json").read_text())
    started = time.perf_counter()
    plan = plan_segmented(MODEL, calibration, OPTIONS, settings, max_logrows=max_logrows)
    print(f"cuts ({len(plan.cuts) + 1} segments): {list(plan.cuts)}", flush=True)
    circuit = build_segmented(plan, OPTIONS, store, settings, say)
    return circuit, time.perf_counter() - started


def prove_images(
    store: ArtifactStore, circuit: dict[str, Any], x: np.ndarray, results: dict[str, Any]
) -> None:
    """Prove and verify each image; ``results`` is filled (and written) as each finishes."""
    float_pred = float_predictions(MODEL, x)
    for i, xi in enumerate(x):
        started = time.perf_counter()
        plan = plan_proof(store, circuit["id"], {"input_data": [xi.tolist()]})
        proof = prove_composite(store, plan)
        check = verify_composite(store, proof["id"])
        proven = int(np.argmax(np.asarray(proof["outputs"][0]).reshape(-1)))
        results["images"].append(
            {
                "label": int(results["labels"][i]),
                "float": int(float_pred[i]),
                "proven": proven,
                "valid": bool(check["valid"]),
                "prove_s": [s["timings"]["prove_s"] for s in proof["segments"]],
                "witness_s": proof["timings"]["witness_s"],
                "verify_s": check["verify_s"],
                "total_s": round(time.perf_counter() - started, 1),
            }
        )
        print(f"image {i}: {results['images'][-1]}", flush=True)
        write_results(results)


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    images = results["images"]
    if not images:
        return {}
    per_segment = np.asarray([im["prove_s"] for im in images])
    return {
        "images": len(images),
        "all_valid": all(im["valid"] for im in images),
        "proven_vs_float_agreement": float(np.mean([im["proven"] == im["float"] for im in images])),
        "proven_accuracy": float(np.mean([im["proven"] == im["label"] for im in images])),
        "float_accuracy_same_images": float(np.mean([im["float"] == im["label"] for im in images])),
        "prove_s_per_segment_mean": [round(float(v), 2) for v in per_segment.mean(axis=0)],
        "prove_s_per_image_mean": round(float(per_segment.sum(axis=1).mean()), 2),
    }


def write_results(results: dict[str, Any]) -> None:
    results["summary"] = summarize(results)
    results["peak_rss_mib"] = results["peak"].mib()
    metrics = json.loads((HERE / "metrics.json").read_text())
    metrics["segmented"] = {k: v for k, v in results.items() if k not in ("labels", "peak")}
    (HERE / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (HERE / "RESULTS.md").write_text(markdown(metrics))


def markdown(metrics: dict[str, Any]) -> str:
    seg = metrics["segmented"]
    unsplit, summary = seg["unsplit"], seg.get("summary") or {}
    lines = [
        "# Digits LeNet, proven in segments",
        "",
        f"Written by `prove_segments.py` ({seg['when']}; {seg['threads']}).",
        "",
        f"- Model: {metrics['parameters']} parameters; float test accuracy "
        f"{metrics['float_test_accuracy']:.2%} on {metrics['test_samples']} images.",
        f"- Unsplit circuit (ezkl `gen_settings`, default run args): {unsplit['num_rows']:,} rows"
        f" = {unsplit['num_rows'] / 2**19:.2f} x 2^19, needs 2^{unsplit['needed_logrows']}.",
        f"- Split into {len(seg['segments'])} segments (max_logrows {seg['max_logrows']}, link "
        f"{seg['link']}, scale {seg['scale']}); compile {seg['compile_total_s']} s in all.",
        f"- Peak RSS: {seg['peak_rss_mib']['self']} MiB (proving process), "
        f"{seg['peak_rss_mib']['largest_child']} MiB (largest child: a segment's compile).",
        "",
        "| segment | logrows | rows | scale | compile s | prove s (mean) | pk MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    means = summary.get("prove_s_per_segment_mean") or [None] * len(seg["segments"])
    for s, p in zip(seg["segments"], means, strict=True):
        lines.append(
            f"| {s['index']} | {s['logrows']} | {s['num_rows']:,} | {s['scale']} | "
            f"{s['compile_s']} | {p} | "
            f"{s['pk_mib']} |"
        )
    if summary:
        lines += [
            "",
            f"Proven images: {summary['images']} (all verify: {summary['all_valid']}); "
            f"proven argmax = float argmax on {summary['proven_vs_float_agreement']:.0%}; "
            f"proven accuracy {summary['proven_accuracy']:.0%} vs float "
            f"{summary['float_accuracy_same_images']:.0%} on the same images; "
            f"{summary['prove_s_per_image_mean']} s of proving per image.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4, help="test images to prove")
    parser.add_argument("--max-logrows", type=int, default=17)
    parser.add_argument("--calibration-samples", type=int, default=8)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/prover-digits-lenet"))
    args = parser.parse_args()
    peak = PeakRss()
    unsplit = unsplit_rows(MODEL)
    print(f"unsplit: {unsplit}", flush=True)
    settings = Settings(
        data_dir=args.data_dir, measure_top=1, calibration_samples=args.calibration_samples
    )
    store = ArtifactStore(settings.data_dir)
    circuit, compile_s = compile_segments(store, settings, args.max_logrows)
    _, x_test, _, y_test = digits_split()
    results: dict[str, Any] = {
        "peak": peak,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "threads": f"RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', 'unset')}",
        "unsplit": unsplit,
        "max_logrows": args.max_logrows,
        "link": circuit["link"],
        "scale": circuit["scale"],
        "compile_total_s": circuit["timings"]["total_s"],
        "compile_wall_s_this_run": round(compile_s, 1),
        "composite_calibration_accuracy": circuit["accuracy"],
        "segments": segment_table(store, circuit),
        "labels": y_test[: args.images].tolist(),
        "images": [],
    }
    write_results(results)
    print(f"segments: {results['segments']}", flush=True)
    prove_images(store, circuit, x_test[: args.images], results)
    print(json.dumps(results["summary"], indent=2))


if __name__ == "__main__":
    main()
