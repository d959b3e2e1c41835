"""The verify-gas model against measured verifiers (bench/fit_gas_model.py on anvil, ezkl
23.0.5): within its stated error; its predictions grow as a verifier's work does; and the
verify-gas objective keeps the candidate of least predicted gas, with a verifier that
deploys under EIP-170."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from prover.circuits import gas
from prover.circuits.compiler import CompileOptions, finalists_for, verifier_pin
from prover.circuits.search import Trial


def settings(
    cols: int,
    logrows: int = 10,
    lookups: int = 0,
    instances: tuple[int, ...] = (4, 2),
    hashes: int = 0,
    shuffles: int = 0,
) -> dict[str, Any]:
    """ezkl settings as far as the gas model reads them: the 4-8-2 MLPs' by default."""
    return {
        "run_args": {"logrows": logrows, "num_inner_cols": cols},
        "num_shuffles": shuffles,
        "model_instance_shapes": [[1, n] for n in instances],
        "module_sizes": {"polycommit": [], "poseidon": [166 * hashes, [1] * hashes]},
        "required_lookups": [{"Sigmoid": {"scale": 1024.0}}] * lookups,
        "required_range_checks": [[0, 127], [-1, 1]] + [[0, 1]] * bool(shuffles),
    }


# Measured by bench/fit_gas_model.py: (settings, verifier, verify gas of one verifyProof
# eth_call, calldata included). Gas is exact for a circuit.
MEASURED = [
    ("relu4 c1 public/public", settings(1, 10, 0, (4, 2), 0), "own", 416_792),
    ("relu4 c4 public/public", settings(4, 8, 0, (4, 2), 0), "own", 785_610),
    ("relu4 c2 hashed/public", settings(2, 9, 0, (2,), 1), "reusable", 920_246),
    ("sigmoid4 c2 hashed/public", settings(2, 13, 1, (2,), 1), "own", 727_583),
    ("sigmoid4 c4 public/public", settings(4, 13, 1, (4, 2), 0), "reusable", 1_245_499),
    ("relu16 c1 public/public", settings(1, 12, 0, (16, 8), 0), "reusable", 594_746),
    ("relu16 c3 public/hashed", settings(3, 10, 0, (16,), 1), "own", 796_073),
    ("mixed8 c2 hashed/hashed", settings(2, 13, 2, (), 2), "own", 788_468),
    ("mixed8 c3 public/public", settings(3, 13, 2, (8, 4), 0), "own", 862_600),
    ("mixed8 c4 hashed/public", settings(4, 13, 2, (4,), 1), "reusable", 1_584_454),
    ("attn4 c1 public/public", settings(1, 14, 1, (16, 2), 0, 4), "own", 783_139),
    ("attn4 c3 hashed/public", settings(3, 14, 1, (2,), 1, 4), "reusable", 2_275_335),
]
# Not in the fit: the bundled digits_attention (bench_chain.py, README), 8 shuffles.
NOT_FITTED = [
    ("digits_attention c1", settings(1, 17, 1, (64, 10), 0, 8), "own", 832_190),
    ("digits_attention c2", settings(2, 16, 1, (64, 10), 0, 8), "reusable", 1_739_496),
]
# (settings, own verifier's runtime bytes): the last two are over EIP-170 (24,576).
MEASURED_BYTES = [
    ("relu4 c1 public/public", settings(1, 10, 0, (4, 2), 0), 10_815),
    ("sigmoid4 c3 public/public", settings(3, 13, 1, (4, 2), 0), 19_923),
    ("mixed8 c2 public/public", settings(2, 13, 2, (8, 4), 0), 17_601),
    ("sigmoid4 c3 hashed/public", settings(3, 13, 1, (2,), 1), 24_794),
    ("mixed8 c4 public/public", settings(4, 13, 2, (8, 4), 0), 27_557),
    ("attn4 c2 public/public", settings(2, 14, 1, (16, 2), 0, 4), 33_284),
    ("digits_attention c1 (not fitted)", settings(1, 17, 1, (64, 10), 0, 8), 24_398),
]


@pytest.mark.parametrize(("case", "circuit", "verifier", "measured"), MEASURED + NOT_FITTED)
def test_verify_gas_within_the_stated_error_of_measured(
    case: str, circuit: dict[str, Any], verifier: str, measured: int
) -> None:
    predicted = gas.predict_quantity(circuit, verifier)
    assert abs(predicted - measured) <= gas.FIT_ERROR[verifier] * measured, case


@pytest.mark.parametrize(("case", "circuit", "measured"), MEASURED_BYTES)
def test_own_verifier_size_within_the_stated_error_and_eip170_respected(
    case: str, circuit: dict[str, Any], measured: int
) -> None:
    predicted = gas.predict(circuit)
    assert abs(predicted["own_bytes"] - measured) <= gas.FIT_ERROR["own_bytes"] * measured, case
    # The own verifier where it deploys (digits_attention's fits by 178 bytes), else not.
    fits = measured <= gas.EIP170_BYTES
    assert predicted["own_fits_eip170"] is fits, case
    assert predicted["verifier"] == ("own" if fits else "reusable"), case


def test_the_model_loads_with_a_coefficient_per_term() -> None:
    assert set(gas.COEFFICIENTS) == set(gas.QUANTITIES) == set(gas.FIT_ERROR)
    for quantity, weights in gas.COEFFICIENTS.items():
        assert len(weights) == len(gas.TERMS) and all(w >= 0 for w in weights), quantity
        assert 0 < gas.FIT_ERROR[quantity] < 0.1, quantity


@pytest.mark.parametrize("quantity", gas.QUANTITIES)
def test_predictions_grow_with_the_verifiers_work(quantity: str) -> None:
    def at(**kwargs: Any) -> float:
        return gas.predict_quantity(settings(**{"cols": 2, **kwargs}), quantity)

    assert at(cols=1) < at(cols=2) < at(cols=4)
    assert at() <= at(lookups=1) <= at(lookups=2)
    assert at(instances=(4, 2)) <= at(instances=(16, 8))
    assert at(instances=(4,), hashes=1) > at(instances=(4,))
    assert at(shuffles=4) > at()


def test_the_reusable_verifier_costs_more_gas_than_the_own() -> None:
    for cols in (1, 2, 4):
        predicted = gas.predict(settings(cols), reusable=None)
        assert predicted["reusable"] > predicted["own"]


def test_an_own_verifier_over_eip170_is_replaced_by_the_reusable_one() -> None:
    small, large = gas.predict(settings(1)), gas.predict(settings(4, lookups=2, hashes=2))
    assert small["own_fits_eip170"] and small["verifier"] == "own"
    assert small["gas"] == small["own"]
    assert not large["own_fits_eip170"] and large["own_bytes"] > gas.EIP170_BYTES * 0.95
    assert large["verifier"] == "reusable" and large["gas"] == large["reusable"]
    # A request that pins a verifier keeps it.
    assert gas.predict(settings(4, lookups=2, hashes=2), reusable=False)["verifier"] == "own"
    assert gas.predict(settings(1), reusable=True)["verifier"] == "reusable"


def test_only_verify_gas_leaves_the_verifier_to_the_model() -> None:
    assert verifier_pin(CompileOptions()) is False
    assert verifier_pin(CompileOptions(reusable_verifier=True)) is True
    assert verifier_pin(CompileOptions(objective="verify-gas")) is None
    assert verifier_pin(CompileOptions(objective="verify-gas", reusable_verifier=True)) is True


def trial(tmp_path: Path, name: str, circuit: dict[str, Any]) -> Trial:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(circuit))
    return Trial(name, path, tmp_path / f"{name}.compiled", run_args=circuit["run_args"])


def test_verify_gas_keeps_the_candidate_of_least_predicted_gas(tmp_path: Path) -> None:
    # In the search's order (fewer rows first): 4 columns, then 2, then 1.
    ranked = [
        trial(tmp_path, "c4", settings(4, logrows=8)),
        trial(tmp_path, "c2", settings(2, logrows=9)),
        trial(tmp_path, "c1", settings(1, logrows=10)),
    ]
    by_gas = finalists_for(ranked, CompileOptions(objective="verify-gas", measure_top=3))
    assert [t.name for t in by_gas] == ["c1"]
    by_time = finalists_for(ranked, CompileOptions(measure_top=2))
    assert [t.name for t in by_time] == ["c4", "c2"]


def test_a_candidate_whose_own_verifier_cannot_deploy_is_ranked_by_the_reusable_gas(
    tmp_path: Path,
) -> None:
    # Constructed to separate the two: "over" has the cheaper own verifier, but over
    # EIP-170 (hashes, a lookup); "fits" has many public instances (gas, not code).
    over = settings(3, lookups=1, instances=(), hashes=2)
    fits = settings(3, instances=(400, 100))
    own_over, own_fits = gas.predict(over, False), gas.predict(fits, False)
    assert own_over["gas"] < own_fits["gas"] and not own_over["own_fits_eip170"]
    assert gas.predict(fits)["gas"] < gas.predict(over)["gas"], "over needs the reusable one"
    ranked = [trial(tmp_path, "over", over), trial(tmp_path, "fits", fits)]
    (chosen,) = finalists_for(ranked, CompileOptions(objective="verify-gas"))
    assert chosen.name == "fits"
    pinned = CompileOptions(objective="verify-gas", reusable_verifier=True)
    assert finalists_for(ranked, pinned)[0].name == "over", "both reusable: fewer instances"
