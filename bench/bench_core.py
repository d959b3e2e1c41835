"""Benchmark the settings search against ezkl's default calibration, end to end.

For every example model (each directory under ``models/`` holding a ``model.onnx``) the
model is compiled twice, each time into its own fresh temporary data dir: once with
``CompileOptions(strategy="ezkl-default")`` and once with ``CompileOptions(strategy="search")``,
calibrated on the model's ``calibration.json``. For each circuit it reports:

* logrows, the setup time recorded by compile (``timings.setup_s``) and the wall time of the
  compile, which also runs in its own child process;
* prove time: ``prove_input(..., fresh=True)`` on the model's ``input.json``, run ``--repeat``
  times, each in a fresh spawned child process; the median ``timings.prove_s`` is shown, and
  the peak RSS (``ru_maxrss``) of the largest prove process, so memory is that process's own;
* verify time: ``verify(store, proof_id)`` of each proof, each in a fresh child (median);
* proof size (``proof_bytes``) and the circuit's max abs output error against onnxruntime
  over the calibration samples (``accuracy.max_abs_error``).

The summary gives per model the prove speedup (default prove s / search prove s), the median
speedup over models, and whether the goal holds: search at least 5x faster at equal or better
accuracy, i.e. search max abs error <= default max abs error * 1.05, or <= ``--tolerance``.

Run from the repository root (ezkl prints its own noise to stdout; the tables come last)::

    .venv/bin/python bench/bench_core.py [--models digits_mlp] [--repeat 3] \
        [--json out.json] [--markdown]

A compile or proof that fails is shown as FAILED with its reason and left out of the summary
(with ezkl 23.0.5, ezkl's own calibration finds no settings for digits_attention). The search
compile of digits_attention takes minutes and ~3 GB; a full run takes ~7 minutes on 2 cores.
Timings are wall clock: run it on an otherwise idle machine (the JSON records load averages).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from common import (
    GOAL_SPEEDUP,
    environment,
    format_table,
    measurements,
    model_dirs,
    strategy_pairs,
    summary_table,
    write_json,
)
from workers import compile_and_prove, compile_worker

from prover.circuits.compiler import CompileOptions, Strategy

STRATEGIES: tuple[Strategy, ...] = ("ezkl-default", "search")
ERROR_SLACK = 1.05


def measure(model_dir: Path, strategy: Strategy, repeat: int) -> dict[str, Any]:
    """Compile, then prove ``repeat`` times and verify each proof, in child processes.

    A failure is recorded in the row's ``error`` (the other numbers stay absent), so one
    model that ezkl cannot handle does not stop the benchmark.
    """
    calibration = json.loads((model_dir / "calibration.json").read_text())
    input_obj = json.loads((model_dir / "input.json").read_text())
    row: dict[str, Any] = {"model": model_dir.name, "strategy": strategy, "error": None}
    model, options = str(model_dir / "model.onnx"), CompileOptions(strategy=strategy)
    with tempfile.TemporaryDirectory(prefix=f"bench-{model_dir.name}-") as data_dir:
        compile_call = partial(compile_worker, model, calibration, options, data_dir)
        label = f"{model_dir.name} ({strategy})"
        run = compile_and_prove(label, compile_call, data_dir, input_obj, repeat)
    if run.error:
        row.update(error=run.error, compile_s=run.compile_s)
        return row
    record = run.compiled["record"]
    accuracy = record["accuracy"]
    row.update(
        circuit_id=record["id"],
        chosen=record["search"]["chosen"],
        logrows=record["logrows"],
        **measurements(record, run.compiled, run.proofs, run.verifies),
        compile_s=run.compile_s,
        max_abs_error=accuracy["max_abs_error"],
        relative_error=accuracy["relative_error"],
        argmax_agreement=accuracy["argmax_agreement"],
        calibration_samples=accuracy["samples"],
        run_args=record["settings"],
        search_trials=record["search"]["trials"],
    )
    return row


def summarize(rows: list[dict[str, Any]], tolerance: float) -> dict[str, Any]:
    """Per-model speedup and accuracy check, the median speedup, and the goal verdict."""
    models: list[dict[str, Any]] = []
    for name, default, found, failed in strategy_pairs(rows):
        if failed:
            models.append({"model": name, "speedup": None, "failed": failed})
            continue
        error_ok = (
            found["max_abs_error"] <= default["max_abs_error"] * ERROR_SLACK
            or found["max_abs_error"] <= tolerance
        )
        speedup = default["prove_s"] / found["prove_s"] if found["prove_s"] else float("inf")
        models.append(
            {
                "model": name,
                "default_prove_s": default["prove_s"],
                "search_prove_s": found["prove_s"],
                "speedup": speedup,
                "default_max_abs_error": default["max_abs_error"],
                "search_max_abs_error": found["max_abs_error"],
                "accuracy_ok": error_ok,
                "goal_met": error_ok and speedup >= GOAL_SPEEDUP,
                "failed": None,
            }
        )
    compared = [m for m in models if m["speedup"] is not None]
    median = statistics.median(m["speedup"] for m in compared) if compared else None
    all_ok = all(m["accuracy_ok"] for m in compared)
    return {
        "models": models,
        "compared_models": len(compared),
        "median_speedup": median,
        "all_accuracy_ok": all_ok,
        "goal": (
            f"search >= {GOAL_SPEEDUP:g}x faster at equal or better accuracy "
            f"(search max abs error <= default * {ERROR_SLACK} or <= {tolerance:g})"
        ),
        "goal_met": median is not None and median >= GOAL_SPEEDUP and all_ok,
        "goal_met_every_model": bool(compared) and all(m["goal_met"] for m in compared),
    }


# --- output ------------------------------------------------------------------------------


def results_table(rows: list[dict[str, Any]], markdown: bool) -> str:
    """One row per (model, strategy); a failed one shows FAILED and dashes."""
    headers = [
        "model", "strategy", "chosen", "logrows", "compile s", "setup s", "prove s",
        "verify s", "peak MB", "proof B", "max abs err",
    ]  # fmt: skip
    cells = []
    for r in rows:
        head = [r["model"], r["strategy"]]
        if r["error"]:
            cells.append([*head, "FAILED", "-", f"{r['compile_s']:.1f}", *["-"] * 6])
            continue
        cells.append(
            [
                *head,
                r["chosen"],
                str(r["logrows"]),
                f"{r['compile_s']:.1f}",
                f"{r['setup_s']:.2f}",
                f"{r['prove_s']:.2f}",
                f"{r['verify_s']:.3f}",
                f"{r['peak_mb']:.0f}",
                str(r["proof_bytes"]),
                f"{r['max_abs_error']:.4g}",
            ]
        )
    return format_table(headers, cells, markdown)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print the tables, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", metavar="NAME", help="model dirs under models/")
    parser.add_argument("--repeat", type=int, default=3, help="proofs per circuit (median)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=CompileOptions().tolerance,
        help="absolute error at or below which search accuracy counts as equal",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write raw numbers here")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    started, load_start = time.perf_counter(), os.getloadavg()
    rows = [
        measure(model_dir, strategy, args.repeat)
        for model_dir in model_dirs(args.models)
        for strategy in STRATEGIES
    ]
    summary = summarize(rows, args.tolerance)

    print()
    print(results_table(rows, args.markdown))
    for row in rows:
        if row["error"]:
            print(f"FAILED {row['model']} ({row['strategy']}): {row['error']}")
    print()
    print(summary_table(summary, args.markdown))
    print()
    median, compared = summary["median_speedup"], summary["compared_models"]
    if median is None:
        print("no model could be compared")
    else:
        print(f"median speedup over {compared} compared model(s): {median:.2f}x")
    print(f"goal: {summary['goal']}: {'MET' if summary['goal_met'] else 'NOT MET'}")
    if summary["goal_met"] and not summary["goal_met_every_model"]:
        print("(met on the median; not by every model)")

    if args.json:
        report = {
            "environment": environment(load_start),
            "repeat": args.repeat,
            "tolerance": args.tolerance,
            "wall_s": time.perf_counter() - started,
            "rows": rows,
            "summary": summary,
        }
        write_json(args.json, report)
        print(f"raw numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
