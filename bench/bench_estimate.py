"""Benchmark the cost estimate against real compiles and proofs, and the large-circuit search
against ezkl's defaults.

For each model (bundled ones by name, generated CNNs as ``cnnSIZExCHANNELS``) and strategy:
``estimate_model`` (timed), then ``compile_model`` in a fresh spawned child (wall time), then
one proof of the model's input in another (prove seconds, and peak RSS beyond the process's
own before proving, as the fit measures it). It prints predicted against measured
proving-key bytes, proof peak memory and prove seconds, with the relative errors, and per
model the compile seconds, prove seconds and logrows of ezkl-default against the search.

Run from the repository root::

    .venv/bin/python bench/bench_estimate.py [--models digits_mlp cnn12x8] \
        [--strategies ezkl-default search] [--json bench/results/estimate.json]

Timings are wall clock on a shared machine: run it idle for prove seconds to mean much.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, get_args

import numpy as np
import onnx  # noqa: F401  (before torch: its exporter needs onnx importable first)
from children import first_line, in_child, peak_bytes, reset_peak
from common import MODELS_DIR, RESULTS, environment, format_table, write_json
from fit_cost_model import cnn
from workers import compile_worker

from prover.circuits.compiler import CompileOptions, Strategy, estimate_model
from prover.circuits.estimate import BASELINE_BYTES
from prover.config import Settings
from prover.proving.proofs import prove_input
from prover.store import ArtifactStore


def model_dir(name: str, work: Path) -> Path:
    """A bundled model's directory, or a generated CNN's with synthetic calibration data."""
    if not name.startswith("cnn"):
        return MODELS_DIR / name
    size, channels = (int(v) for v in name[3:].split("x"))
    directory = work / name
    directory.mkdir(parents=True, exist_ok=True)
    cnn(directory / "model.onnx", size, channels)
    rng = np.random.default_rng(0)
    samples = rng.standard_normal((4, size * size)).round(4)
    calibration = {"input_data": [samples.reshape(-1).tolist()]}
    (directory / "calibration.json").write_text(json.dumps(calibration))
    (directory / "input.json").write_text(json.dumps({"input_data": [samples[0].tolist()]}))
    return directory


def prove_worker(data_dir: str, circuit_id: str, input_obj: Any) -> dict[str, Any]:
    """Prove one fresh inference in this (fresh) process; its peak memory is counted as the
    fit counts it: the RSS peak beyond the process's resident bytes before proving, plus
    the model's baseline of a process with ezkl loaded (``BASELINE_BYTES``)."""
    store = ArtifactStore(Path(data_dir))
    base = reset_peak()
    record = prove_input(store, circuit_id, input_obj, fresh=True)
    return {"prove_s": record["timings"]["prove_s"], "peak": peak_bytes() - base + BASELINE_BYTES}


def measure(directory: Path, strategy: Strategy) -> dict[str, Any]:
    """Estimate, then compile and prove for real; a failure is recorded in ``error``."""
    row: dict[str, Any] = {"model": directory.name, "strategy": strategy, "error": None}
    calibration = json.loads((directory / "calibration.json").read_text())
    input_obj = json.loads((directory / "input.json").read_text())
    with tempfile.TemporaryDirectory(prefix="bench-estimate-") as data_dir:
        settings = Settings(data_dir=Path(data_dir))
        options = CompileOptions(strategy=strategy)
        try:
            print(f"[bench] estimating {directory.name} ({strategy})", flush=True)
            row["estimate"] = estimate_model(
                directory / "model.onnx", calibration, options, settings
            )
            print(f"[bench] compiling {directory.name} ({strategy})", flush=True)
            started = time.perf_counter()
            compiled = in_child(
                compile_worker, str(directory / "model.onnx"), calibration, options, data_dir
            )
            row["compile_s"] = time.perf_counter() - started
            record = compiled["record"]
            row["load_1m"] = os.getloadavg()[0]
            proof = in_child(prove_worker, data_dir, record["id"], input_obj)
        except Exception as exc:
            row["error"] = first_line(exc)
            print(f"[bench] {directory.name} ({strategy}) failed: {row['error']}", flush=True)
            return row
    row.update(
        chosen=record["search"]["chosen"],
        logrows=record["logrows"],
        pk_bytes=record["pk_bytes"],
        prove_s=proof["prove_s"],
        peak_bytes=proof["peak"],
        record_estimate=record["estimate"],
    )
    return row


def error(predicted: float, measured: float) -> str:
    return f"{100 * (predicted - measured) / measured:+.0f}%"


def estimate_table(rows: list[dict[str, Any]]) -> str:
    headers = [
        "model", "strategy", "chosen", "same", "logrows", "pk MB", "pred", "err",
        "peak MB", "pred", "err", "prove s", "pred", "err", "estimate s",
    ]  # fmt: skip
    cells = []
    for r in rows:
        if r["error"]:
            cells.append([r["model"], r["strategy"], "FAILED", *["-"] * 12])
            continue
        e = r["estimate"]
        same = "yes" if e["chosen"] == r["chosen"] else "no"
        peak, predicted_peak = r["peak_bytes"], e["peak_memory_bytes"]
        cells.append(
            [
                r["model"], r["strategy"], r["chosen"], same, str(r["logrows"]),
                f"{r['pk_bytes'] / 1e6:.1f}", f"{e['pk_bytes'] / 1e6:.1f}",
                error(e["pk_bytes"], r["pk_bytes"]), f"{peak / 1e6:.0f}",
                f"{predicted_peak / 1e6:.0f}", error(predicted_peak, peak),
                f"{r['prove_s']:.2f}", f"{e['prove_s']:.2f}", error(e["prove_s"], r["prove_s"]),
                f"{e['estimate_s']:.1f}",
            ]
        )  # fmt: skip
    return format_table(headers, cells, False)


def strategy_table(rows: list[dict[str, Any]]) -> str:
    """ezkl-default against the search per model: compile s, prove s, logrows."""
    headers = ["model", "strategy", "logrows", "compile s", "prove s", "compile x default"]
    by_model: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_model.setdefault(r["model"], {})[r["strategy"]] = r
    cells = []
    for name, pair in by_model.items():
        base = pair.get("ezkl-default")
        for strategy, r in pair.items():
            if r["error"]:
                continue
            ratio = (
                "-" if not base or base["error"] else f"{r['compile_s'] / base['compile_s']:.2f}"
            )
            cells.append(
                [name, strategy, str(r["logrows"]), f"{r['compile_s']:.1f}",
                 f"{r['prove_s']:.2f}", ratio]
            )  # fmt: skip
    return format_table(headers, cells, False) if cells else "(nothing compiled)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["digits_mlp", "digits_cnn", "cnn12x8"])
    parser.add_argument(
        "--strategies", nargs="+", choices=get_args(Strategy), default=["ezkl-default", "search"]
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "estimate.json")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-models-") as work:
        rows = [
            measure(model_dir(name, Path(work)), strategy)
            for name in args.models
            for strategy in args.strategies
        ]
    print()
    print(estimate_table(rows))
    print()
    print(strategy_table(rows))
    write_json(args.json, {"environment": environment(load), "rows": rows})
    print(f"raw numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
