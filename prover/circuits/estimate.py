"""Cost estimates before any setup: rows, logrows, proving-key bytes, peak memory, seconds.

ezkl's settings (from gen_settings + calibrate, no setup) fix the circuit's shape: 2^logrows
rows, the inner columns per region, the lookup tables and range checks. A halo2 proving key
holds each fixed and permutation column over the evaluation domain, and setup and proving
work (FFTs, multi-scalar multiplications) on polynomials of 2^logrows points per column,
so each cost is modelled as a non-negative combination of ``terms``: a constant (the
process's baseline), the rows, and the rows times the inner columns, lookups, range checks
and dynamic lookups; times take n log n in place of n. The coefficients are fitted on
measured circuits by ``bench/fit_cost_model.py`` and stored in ``cost_model.json`` next to
this file (what was measured: its ``measured_on``), with the fit's largest relative error on
its own measurements per quantity (``FIT_ERROR``). Key size and peak memory are stable on
any machine; seconds depend on the machine and its load (fitted on 2 shared cores, rayon's
default threads).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MODEL_PATH = Path(__file__).with_name("cost_model.json")
MODEL: dict[str, Any] = json.loads(MODEL_PATH.read_text())
# Per quantity, one weight per term (``TERMS``, in the order ``terms`` returns them).
COEFFICIENTS: dict[str, list[float]] = MODEL["coefficients"]
FIT_ERROR: dict[str, float] = MODEL["fit_error"]
TERMS = (
    "constant",
    "rows",
    "rows x inner_cols",
    "rows x inner_col pairs",
    "rows x lookups",
    "rows x dynamic lookups",
)
TIMES = ("setup_s", "prove_s")
# The fit's domain: the largest logrows and lookup tables beyond the range checks of the
# fitted circuits. Past it a prediction is an extrapolation, and its rankings were measured
# wrong: lstm_medium (Sigmoid and Tanh tables) at 2^17 rows and 1 inner column was
# predicted faster than ezkl's 2^18 and 2, and proved 1.4x slower at 1.5x the memory.
FITTED_MAX_LOGROWS: int = MODEL["domain"]["max_logrows"]
FITTED_MAX_LOOKUPS: int = MODEL["domain"]["max_lookups"]
# Resident bytes of a process that has imported onnx, onnxruntime and ezkl (as the compile
# sandbox's children and the workers have) before it sets up or proves: measured by the fit.
BASELINE_BYTES: int = MODEL["baseline_bytes"]


def terms(settings: dict[str, Any], quantity: str) -> list[float]:
    """The model's terms for one quantity of a circuit, from its ezkl settings.

    Measured key bytes per row are 2.9k, 4.2k and 10.7k at 1, 2 and 4 inner columns: more
    than linear (ezkl's selectors and permutation columns grow with the column pairs), so
    the rows times the pairs of inner columns is a term of its own."""
    run_args = settings["run_args"]
    logrows = int(run_args["logrows"])
    n = float(2**logrows) * (logrows if quantity in TIMES else 1)
    cols = int(run_args["num_inner_cols"])
    dynamic = int(settings.get("num_dynamic_lookups", 0)) + int(settings.get("num_shuffles", 0))
    return [
        1.0,
        n,
        n * cols,
        n * cols * (cols - 1) / 2,
        n * len(settings.get("required_lookups", [])),
        n * dynamic,
    ]


def predict_quantity(
    settings: dict[str, Any], quantity: str, coefficients: list[float] | None = None
) -> float:
    """One quantity (a key of ``COEFFICIENTS``) predicted for a circuit's settings."""
    weights = COEFFICIENTS[quantity] if coefficients is None else coefficients
    return float(sum(w * t for w, t in zip(weights, terms(settings, quantity), strict=True)))


def within_fit(settings: dict[str, Any]) -> bool:
    """Whether a circuit lies inside the domain the model was fitted on."""
    return (
        int(settings["run_args"]["logrows"]) <= FITTED_MAX_LOGROWS
        and len(settings.get("required_lookups", [])) <= FITTED_MAX_LOOKUPS
    )


def predict(settings: dict[str, Any]) -> dict[str, Any]:
    """Everything the estimate says of one circuit: its shape and predicted costs.

    ``peak_memory_bytes`` is a proof job's (the process, with ezkl loaded, while it
    proves): what a worker must have; ``compile_peak_memory_bytes`` covers setup too."""
    run_args = settings["run_args"]
    setup_peak = BASELINE_BYTES + predict_quantity(settings, "setup_peak_bytes")
    prove_peak = BASELINE_BYTES + predict_quantity(settings, "prove_peak_bytes")
    return {
        "rows": int(settings["num_rows"]),
        "logrows": int(run_args["logrows"]),
        "num_inner_cols": int(run_args["num_inner_cols"]),
        "pk_bytes": int(predict_quantity(settings, "pk_bytes")),
        "peak_memory_bytes": int(prove_peak),
        "compile_peak_memory_bytes": int(max(setup_peak, prove_peak)),
        "setup_s": round(predict_quantity(settings, "setup_s"), 3),
        "prove_s": round(predict_quantity(settings, "prove_s"), 3),
        "within_fit": within_fit(settings),
    }


def logrows_within(memory_bytes: int, num_inner_cols: int = 2, lookups: int = 1) -> int:
    """The largest logrows whose proof is predicted to fit ``memory_bytes`` (for a circuit
    of ``num_inner_cols`` columns and ``lookups`` lookup tables: a range check's, the
    search's usual finalist), so that a memory budget can bound each segment's size."""
    fitting = 0
    for logrows in range(4, 27):
        settings = {
            "num_rows": 2**logrows,
            "run_args": {"logrows": logrows, "num_inner_cols": num_inner_cols},
            "required_lookups": [None] * lookups,
        }
        if BASELINE_BYTES + predict_quantity(settings, "prove_peak_bytes") <= memory_bytes:
            fitting = logrows
    return fitting
