"""Measure circuits and fit the cost model in ``prover/circuits/estimate.py``.

For each case (a model and one set of run args: ezkl's own calibration or a search
candidate) it calibrates and compiles the circuit, sets up its keys in a fresh spawned
child and proves one input in another, recording the settings JSON, the proving key's
bytes, and each child's wall time and peak RSS (``ru_maxrss``; the children import onnx,
onnxruntime and ezkl first, as the compile sandbox's zygote does, so the baseline matches).
It then fits every quantity as a non-negative combination of ``estimate.terms`` (least
squares on relative error), writes the model to ``prover/circuits/cost_model.json`` (which
estimate.py loads: the coefficients, the fit's largest error, the baseline and domain of the
measured circuits) and prints each case's prediction error (also
``bench/results/cost_fit.json``; the raw rows in ``cost_measurements.json``).

Run from the repository root (about 10-15 minutes on 2 cores)::

    .venv/bin/python bench/fit_cost_model.py [--cases cnn12x4 ...] [--refit]

``--refit`` fits again from bench/results/cost_measurements.json without measuring.
Timings are wall clock on a shared machine: peak memory and key size are the stable
quantities; the JSON records the load averages.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import onnx  # noqa: F401  (before torch: its exporter needs onnx importable first)
from children import in_child, peak_bytes, reset_peak
from common import (
    MODELS_DIR,
    RESULTS,
    TEST_MODELS,
    environment,
    fit_nonnegative,
    format_table,
    load_file,
    stated_error,
    write_json,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prover.circuits import estimate  # noqa: E402

MEASUREMENTS = RESULTS / "cost_measurements.json"


def cnn(path: Path, size: int, channels: int) -> Path:
    """Two 3x3 convolutions (the second strided) and a dense layer over a size x size image:
    rows grow with size^2 x channels^2 (8x4: ~2^14 rows, 12x8: ~2^16, 16x8: ~2^17)."""
    import torch

    from prover.circuits.export import export_onnx

    torch.manual_seed(0)
    half = (size + 1) // 2
    module = torch.nn.Sequential(
        torch.nn.Conv2d(1, channels, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(channels, channels, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(channels * half * half, 10),
    )
    return export_onnx(module, torch.zeros(1, 1, size, size), path)


def mlp(path: Path) -> Path:
    """The tests' 4-8-2 MLP."""
    return load_file("bench_test_models", TEST_MODELS).make_mlp(path)


# name -> (model builder or bundled directory, candidates: None is ezkl's own calibration,
# else (scale, legs, inner cols, headroom bits) as the search makes them).
Candidate = tuple[int, int, int, int] | None
CASES: dict[str, tuple[str | Callable[[Path], Path], list[Candidate]]] = {
    "mlp": (mlp, [None, (10, 3, 1, 11), (10, 3, 4, 11)]),
    "digits_mlp": ("digits_mlp", [None, (10, 3, 2, 11)]),
    "digits_cnn": ("digits_cnn", [None, (10, 3, 2, 11)]),
    "digits_attention": ("digits_attention", [(10, 3, 2, 15), (10, 3, 4, 15)]),
    "cnn8x4": (lambda p: cnn(p, 8, 4), [None, (7, 2, 4, 11)]),
    "cnn12x4": (lambda p: cnn(p, 12, 4), [None, (7, 2, 1, 11)]),
    "cnn12x8": (lambda p: cnn(p, 12, 8), [None]),
    "cnn16x8": (lambda p: cnn(p, 16, 8), [None]),
}


def _preload() -> int:
    """Import what the compile sandbox's zygote imports, then ``reset_peak``."""
    import ezkl  # noqa: F401
    import onnxruntime  # noqa: F401

    return reset_peak()


def setup_child(compiled: str, srs: str, out: str) -> dict[str, Any]:
    """Set up keys in this (fresh) process: seconds and peak RSS."""
    base = _preload()
    from prover.circuits.backend import setup_keys

    _, pk, seconds = setup_keys(Path(compiled), Path(srs), Path(out))
    return {
        "setup_s": seconds,
        "setup_base_bytes": base,
        "setup_peak_bytes": peak_bytes() - base,
        "pk_bytes": pk.stat().st_size,
    }


def prove_child(compiled: str, pk: str, witness: str, srs: str) -> dict[str, Any]:
    """Prove one witness in this (fresh) process: seconds and peak RSS."""
    base = _preload()
    from prover.circuits.backend import prove_witness

    proof = Path(witness).with_name("proof.json")
    seconds = prove_witness(Path(compiled), Path(pk), Path(witness), proof, Path(srs), False)
    return {"prove_s": seconds, "prove_base_bytes": base, "prove_peak_bytes": peak_bytes() - base}


def model_path(source: str | Callable[[Path], Path], work: Path) -> tuple[Path, Any]:
    if isinstance(source, str):
        directory = MODELS_DIR / source
        return directory / "model.onnx", json.loads((directory / "calibration.json").read_text())
    return source(work / "model.onnx"), None


def measure_case(name: str, candidate: Candidate, work: Path, srs_dir: Path) -> dict[str, Any]:
    """Calibrate + compile (as the search does), then set up and prove in children."""
    from prover.circuits.compiler import synthetic_samples
    from prover.circuits.data import parse_samples
    from prover.circuits.intake import load_model
    from prover.circuits.search import SearchSpace, Visibility, Workspace
    from prover.circuits.srs import resolve_srs
    from prover.circuits.witness import generate_witness, write_input
    from prover.config import Settings

    source, _ = CASES[name]
    path, calibration = model_path(source, work)
    info = load_model(path, Settings())
    samples = synthetic_samples(info, 4) if calibration is None else None
    samples = samples or parse_samples(calibration, info.inputs)[:4]
    ws = Workspace(info, samples, Visibility(), work / "ws", 22, 2.0)
    space = SearchSpace()
    chosen = None if candidate is None else space.candidate(*candidate)
    started = time.perf_counter()
    trial = ws.evaluate(chosen)
    row: dict[str, Any] = {"case": name, "candidate": trial.name, "error": trial.error}
    row["calibrate_compile_s"] = time.perf_counter() - started
    if trial.error:
        return row
    row["settings"] = json.loads(trial.settings_path.read_text())
    assert trial.logrows is not None
    srs = resolve_srs(trial.logrows, srs_dir, None).path
    out = trial.compiled_path.parent
    row |= in_child(setup_child, str(trial.compiled_path), str(srs), str(out))
    witness = out / "witness.json"
    generate_witness(trial.compiled_path, write_input(out / "input.json", samples[:1]), witness)
    row["loadavg_1m"] = os.getloadavg()[0]
    row |= in_child(
        prove_child, str(trial.compiled_path), str(out / "pk.key"), str(witness), str(srs)
    )
    return row


def measure(names: list[str]) -> list[dict[str, Any]]:
    rows = []
    srs_dir = Path(tempfile.gettempdir()) / "prover-fit-srs"
    for name in names:
        for candidate in CASES[name][1]:
            with tempfile.TemporaryDirectory(prefix=f"fit-{name}-") as tmp:
                print(f"[fit] {name} {candidate or 'ezkl-default'}", flush=True)
                try:
                    row = measure_case(name, candidate, Path(tmp), srs_dir)
                except Exception as exc:  # one model ezkl cannot handle must not stop the fit
                    row = {"case": name, "candidate": str(candidate), "error": str(exc)[-600:]}
                rows.append(row)
                print(f"[fit] {json.dumps({k: v for k, v in row.items() if k != 'settings'})}")
    return rows


# Times measured under a 1-minute load above this (on 2 cores) are left out of the time fit:
# they measure the other work as much as the circuit. Sizes and memory use every row.
MAX_LOAD = 6.0
QUANTITIES = ("pk_bytes", "setup_peak_bytes", "prove_peak_bytes", "setup_s", "prove_s")


def used_rows(rows: list[dict[str, Any]], quantity: str) -> list[dict[str, Any]]:
    """The rows a quantity is fitted on: every measured one; for a time, those measured at
    a load up to ``MAX_LOAD``."""
    good = [r for r in rows if not r.get("error")]
    return [r for r in good if quantity not in estimate.TIMES or r["loadavg_1m"] <= MAX_LOAD]


def fit(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Non-negative coefficients per quantity, minimising the relative squared error."""
    import numpy as np

    coefficients = {}
    for quantity in QUANTITIES:
        used = used_rows(rows, quantity)
        a = np.array([estimate.terms(r["settings"], quantity) for r in used], dtype=float)
        coefficients[quantity] = fit_nonnegative(a, [r[quantity] for r in used])
        if quantity in estimate.TIMES:
            unmeasured = [j for j in range(a.shape[1]) if not a[:, j].any()]
            borrow(coefficients, quantity, unmeasured)
    return coefficients


def borrow(coefficients: dict[str, list[float]], quantity: str, unmeasured: list[int]) -> None:
    """A time term no quiet measurement has (lookups: digits_attention was measured under
    a load of 12) takes the memory's ratio to the per-row term: a proof's work per row is
    taken to grow as its memory per row does."""
    memory = coefficients[quantity.replace("_s", "_peak_bytes")]
    times = coefficients[quantity]
    for j in unmeasured:
        if memory[1]:
            times[j] = float(f"{times[1] * memory[j] / memory[1]:.6g}")


def relative_error(row: dict[str, Any], quantity: str, weights: list[float]) -> float:
    """(predicted - measured) / measured of one quantity of a measured row."""
    predicted = estimate.predict_quantity(row["settings"], quantity, weights)
    return float((predicted - row[quantity]) / row[quantity])


def error_table(rows: list[dict[str, Any]], coefficients: dict[str, list[float]]) -> str:
    headers = ["case", "candidate", "logrows", *(f"{q} err %" for q in QUANTITIES)]
    cells = []
    for r in rows:
        if r.get("error"):
            cells.append([r["case"], r["candidate"], "FAILED", *["-"] * len(QUANTITIES)])
            continue
        errs = [f"{100 * relative_error(r, q, coefficients[q]):+.1f}" for q in QUANTITIES]
        cells.append([r["case"], r["candidate"], str(r["settings"]["run_args"]["logrows"]), *errs])
    return format_table(headers, cells, False)


def cost_model(rows: list[dict[str, Any]], coefficients: dict[str, list[float]]) -> dict[str, Any]:
    """The model as estimate.py loads it. Its error is the largest on the rows each quantity
    was fitted on; its baseline the median resident bytes of a child before its work (ezkl
    loaded), to the MB; its domain the largest circuit and lookup count measured."""
    good = [r for r in rows if not r.get("error")]
    bases = [r[k] for r in good for k in ("setup_base_bytes", "prove_base_bytes")]
    cases = ", ".join(sorted({r["case"] for r in good}))
    timed = len(used_rows(rows, estimate.TIMES[0]))
    return {
        "coefficients": coefficients,
        "fit_error": {
            q: stated_error(relative_error(r, q, coefficients[q]) for r in used_rows(rows, q))
            for q in QUANTITIES
        },
        "baseline_bytes": int(round(statistics.median(bases), -6)),
        "domain": {
            "max_logrows": max(int(r["settings"]["run_args"]["logrows"]) for r in good),
            "max_lookups": max(len(r["settings"].get("required_lookups", [])) for r in good),
        },
        "terms": list(estimate.TERMS),
        "measured_on": f"{len(good)} circuits of {cases}; times on the {timed} measured at a "
        f"1-minute load <= {MAX_LOAD:g}; ezkl {version('ezkl')}",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--refit", action="store_true", help="fit the stored measurements")
    args = parser.parse_args(argv)
    kept = json.loads(MEASUREMENTS.read_text())["rows"] if MEASUREMENTS.exists() else []
    if args.refit:
        rows = kept
    else:
        load = os.getloadavg()
        # Cases measured now replace their earlier rows; the other cases' rows are kept.
        rows = [r for r in kept if r["case"] not in args.cases] + measure(args.cases)
        payload = {
            "environment": environment(load),
            "rayon_threads": os.environ.get("RAYON_NUM_THREADS", "default"),
            "rows": rows,
        }
        write_json(MEASUREMENTS, payload)
    coefficients = fit(rows)
    print(error_table(rows, coefficients))
    write_json(estimate.MODEL_PATH, cost_model(rows, coefficients))
    write_json(RESULTS / "cost_fit.json", coefficients)
    print(f"cost model written to {estimate.MODEL_PATH}")


if __name__ == "__main__":
    main()
