"""The cost model against measured circuits: proving-key bytes and peak memory within 30%
of what ezkl 23.0.5 measured (bench/fit_cost_model.py, 2 cores); and its predictions grow
with the circuit as they must."""

from __future__ import annotations

from typing import Any

import pytest

from prover.circuits import estimate

# Measured by bench/fit_cost_model.py: (case, logrows, inner cols, pk bytes, peak RSS of a
# proof beyond a process with ezkl loaded). Key size is exact for a circuit; memory varies
# by a few percent between runs.
MEASURED = [
    ("mlp ezkl-default", 15, 2, 138_479_371, 327_286_784),
    ("mlp s10-b128x3-c1", 10, 1, 2_951_715, 15_822_848),
    ("mlp s10-b128x3-c4", 8, 4, 2_739_731, 16_392_192),
    ("digits_mlp s10-b128x3-c2", 12, 2, 17_311_499, 49_336_320),
    ("digits_cnn s10-b128x3-c2", 14, 2, 69_240_587, 168_427_520),
    ("cnn8x4 s7-b512x2-c4", 13, 4, 87_585_491, 238_174_208),
    ("cnn12x4 s7-b512x2-c1", 16, 1, 188_834_979, 447_713_280),
    ("cnn12x8 ezkl-default", 16, 2, 276_956_939, 655_572_992),
    ("cnn16x8 ezkl-default", 17, 2, 553_912_075, 1_304_969_216),
]


def settings(logrows: int, cols: int, lookups: int = 0) -> dict[str, Any]:
    return {
        "num_rows": 2**logrows // 2,
        "run_args": {"logrows": logrows, "num_inner_cols": cols},
        "required_lookups": [f"lookup{i}" for i in range(lookups)],
        "required_range_checks": [[0, 127], [-1, 1]],
    }


@pytest.mark.parametrize(("case", "logrows", "cols", "pk_bytes", "peak_bytes"), MEASURED)
def test_key_size_and_memory_within_30_percent_of_measured(
    case: str, logrows: int, cols: int, pk_bytes: int, peak_bytes: int
) -> None:
    predicted = estimate.predict(settings(logrows, cols))
    assert abs(predicted["pk_bytes"] - pk_bytes) <= 0.3 * pk_bytes, case
    beyond_baseline = predicted["peak_memory_bytes"] - estimate.BASELINE_BYTES
    assert abs(beyond_baseline - peak_bytes) <= 0.3 * peak_bytes, case


def test_every_quantity_has_a_coefficient_per_term() -> None:
    for quantity, weights in estimate.COEFFICIENTS.items():
        assert len(weights) == len(estimate.terms(settings(10, 2), quantity))
        assert all(w >= 0 for w in weights), quantity


def test_predictions_grow_with_rows_columns_and_lookups() -> None:
    small, large = estimate.predict(settings(14, 2)), estimate.predict(settings(15, 2))
    wide = estimate.predict(settings(14, 4))
    for key in ("pk_bytes", "peak_memory_bytes", "compile_peak_memory_bytes", "prove_s"):
        assert small[key] < large[key], key
        assert small[key] <= wide[key], key
    assert large["logrows"] == 15 and large["rows"] == 2**14
    assert small["peak_memory_bytes"] > small["pk_bytes"], "a proof holds its key and more"
    looked_up = estimate.predict(settings(14, 2, lookups=3))
    assert looked_up["pk_bytes"] >= small["pk_bytes"]
