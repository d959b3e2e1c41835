"""Prove the digits ResNet, too big for this machine unsplit, in segments that fit a worker.

The whole circuit needs 2^20 rows with a Sigmoid table: the estimate (no setup) predicts a
proof peak well over the machine's memory. ``plan_any`` with a worker's memory
(``--worker-gb``, as ``prover compile --fit-workers`` reads PROVER_WORKER_MEMORY_BYTES)
cuts it between residual blocks into as few segments as each prove within it; each is
compiled at one pinned scale (one structure: one calibration, compile and setup per
segment), one image is proven segment by segment, the composite verified, and its logits
compared with onnxruntime's. Writes ``fit_workers.json`` (timings, logrows, peak memory)
and a summary into ``metrics.json`` ("segmented").

    RAYON_NUM_THREADS=2 python models/digits_resnet/prove_fit_workers.py [--worker-gb 6]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from prover.circuits.compiler import CompileOptions, estimate_model  # noqa: E402
from prover.circuits.sandbox import machine_memory  # noqa: E402
from prover.circuits.search import SearchSpace  # noqa: E402
from prover.circuits.segments import SegmentedPlan, build_any, plan_any  # noqa: E402
from prover.config import Settings  # noqa: E402
from prover.proving.composite import prove_composite, verify_composite  # noqa: E402
from prover.proving.proofs import plan_proof  # noqa: E402
from prover.store import ArtifactStore  # noqa: E402

OPTIONS = CompileOptions(space=SearchSpace(scales=(10,), legs=(2,), inner_cols=(2,)), measure_top=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker-gb", type=float, default=6.0)
    parser.add_argument("--samples", type=int, default=4, help="calibration samples")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="resnet-"))
    settings = Settings(data_dir=data_dir, measure_top=1, calibration_samples=args.samples)
    store = ArtifactStore(settings.data_dir)
    model = HERE / "model.onnx"
    calibration = json.loads((HERE / "calibration.json").read_text())
    image = json.loads((HERE / "input.json").read_text())
    report: dict = {"machine_memory_bytes": machine_memory()}
    started = time.perf_counter()
    whole = estimate_model(model, calibration, CompileOptions(), settings)
    report["unsplit_estimate"] = {
        k: whole[k] for k in ("logrows", "rows", "pk_bytes", "peak_memory_bytes", "prove_s")
    } | {"estimate_s": round(time.perf_counter() - started, 2)}
    started = time.perf_counter()
    memory = int(args.worker_gb * 1e9)
    plan = plan_any(model, calibration, OPTIONS, settings, max_memory_bytes=memory)
    assert isinstance(plan, SegmentedPlan), "the model fits the worker unsplit"
    report["plan"] = {"worker_memory_bytes": memory, "cuts": len(plan.cuts),
                      "estimated_logrows": list(plan.estimated_logrows), "link": plan.link,
                      "plan_s": round(time.perf_counter() - started, 2)}  # fmt: skip
    started = time.perf_counter()
    circuit = build_any(plan, OPTIONS, store, settings)
    report["compile_s"] = round(time.perf_counter() - started, 1)
    report["segments"] = [
        {"logrows": s["logrows"], "pk_bytes": s["pk_bytes"]} for s in circuit["segments"]
    ]
    started = time.perf_counter()
    proof = prove_composite(store, plan_proof(store, circuit["id"], image))
    report["prove_s"] = round(time.perf_counter() - started, 1)
    report["segment_prove_s"] = [s["timings"]["prove_s"] for s in proof["segments"]]
    report["verify"] = verify_composite(store, proof["id"])["valid"]
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    x = np.asarray(image["input_data"][0], dtype=np.float32).reshape(1, 1, 8, 8)
    expected = session.run(None, {"image": x})[0].reshape(-1)
    got = np.asarray(proof["outputs"][0]).reshape(-1)
    report["max_abs_error"] = float(np.max(np.abs(got - expected)))
    report["argmax"] = {"proven": int(np.argmax(got)), "float": int(np.argmax(expected))}
    report["peak_rss_bytes"] = {
        "this process (proving)": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "largest child (compiling)": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
    }
    (HERE / "fit_workers.json").write_text(json.dumps(report, indent=2) + "\n")
    metrics = json.loads((HERE / "metrics.json").read_text())
    metrics["segmented"] = {  # also how the tests know not to compile it whole
        "segments": len(report["segments"]),
        "logrows": [s["logrows"] for s in report["segments"]],
        "verified": report["verify"],
        "argmax_matches_float": report["argmax"]["proven"] == report["argmax"]["float"],
    }
    (HERE / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
