"""Federated rounds: client step proofs plus a proven weighted average, and forged rounds."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.models import step_batch, step_model
from prover.config import Settings
from prover.errors import InvalidInputError
from prover.store import ArtifactStore
from prover.training.federated import compile_aggregation, prove_aggregation, verify_round
from prover.training.step_export import flatten_params
from prover.training.steps import commitment, compile_step, prove_step

pytestmark = pytest.mark.slow

CLIENT_WEIGHTS = [1.0, 3.0]  # client 1 holds three times the data: c = (0.25, 0.75)


@pytest.fixture(scope="module")
def round_(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One round: two clients step from the initial weights on their own batches, and the
    aggregation of their new weights is proven."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("federated"), measure_top=1)
    store = ArtifactStore(settings.data_dir)
    model = step_model()
    step_circuit = compile_step(model, "mse", 0.5, *step_batch(0), store, settings)
    scale = step_circuit["training"]["scale"]
    weights = flatten_params(model)
    steps = [prove_step(store, step_circuit["id"], weights, *step_batch(1 + k)) for k in range(2)]
    new = [np.asarray(s["new_weights"]) for s in steps]
    aggregation = compile_aggregation(
        weights.size, CLIENT_WEIGHTS, scale, store, settings, sample_weights=new
    )
    proof = prove_aggregation(store, aggregation["id"], new)
    return {
        "store": store,
        "scale": scale,
        "weights": weights,
        "step_circuit": step_circuit,
        "steps": steps,
        "aggregation": aggregation,
        "proof": proof,
    }


def test_a_round_verifies_and_the_global_weights_are_the_weighted_average(round_: dict) -> None:
    store, scale, steps, proof = round_["store"], round_["scale"], round_["steps"], round_["proof"]
    aggregation = round_["aggregation"]
    assert aggregation["training"]["coefficients"] == [0.25, 0.75]
    assert aggregation["training"]["scale"] == aggregation["settings"]["input_scale"] == scale
    ids = [s["proof_id"] for s in steps]
    start = commitment(round_["weights"], scale)
    result = verify_round(store, ids, proof["proof_id"], start)
    assert result["valid"], result
    assert result["bad_client"] is None and result["global_weights_in"] == start
    global_weights = np.asarray(proof["global_weights"])
    assert result["global_weights_out"] == proof["commitments"]["global"]
    assert proof["commitments"]["global"] == commitment(global_weights, scale)
    assert proof["commitments"]["clients"] == [s["commitments"]["weights_out"] for s in steps]
    a, b = (np.asarray(s["new_weights"]) for s in steps)
    assert np.max(np.abs(global_weights - (0.25 * a + 0.75 * b))) <= 2 * 2.0**-scale
    # The clients' updates differ enough that the plain mean would not pass: weighting matters.
    assert np.max(np.abs(global_weights - (a + b) / 2)) > 10 * 2.0**-scale


def test_an_aggregation_over_a_forged_client_output_names_the_client(round_: dict) -> None:
    store, scale, steps = round_["store"], round_["scale"], round_["steps"]
    ids = [s["proof_id"] for s in steps]
    forged = np.asarray(steps[1]["new_weights"]).copy()
    forged[0] += 8 * 2.0**-scale  # a value the client's step did not produce
    proof = prove_aggregation(store, round_["aggregation"]["id"], [steps[0]["new_weights"], forged])
    result = verify_round(store, ids, proof["proof_id"])
    assert not result["valid"] and result["bad_client"] == 1, result
    assert "client 1's step produced" in result["reason"]
    assert result["global_weights_out"] is None

    # The honest aggregation with the clients listed in the wrong order breaks at client 0.
    swapped = verify_round(store, ids[::-1], round_["proof"]["proof_id"])
    assert not swapped["valid"] and swapped["bad_client"] == 0


def test_a_client_starting_from_other_global_weights_is_rejected(round_: dict) -> None:
    store, scale, steps = round_["store"], round_["scale"], round_["steps"]
    ids = [s["proof_id"] for s in steps]
    stale = round_["weights"].copy()
    stale[0] += 0.01
    other = prove_step(store, round_["step_circuit"]["id"], stale, *step_batch(2))
    result = verify_round(store, [ids[0], other["proof_id"]], round_["proof"]["proof_id"])
    assert not result["valid"] and result["bad_client"] == 1, result
    assert "does not start from" in result["reason"]

    # Both clients agree, but not with the committed global weights.
    committed = commitment(stale, scale)
    result = verify_round(store, ids, round_["proof"]["proof_id"], committed)
    assert not result["valid"] and result["bad_client"] == 0
    assert "committed global weights" in result["reason"]


def test_aggregation_inputs_are_checked(round_: dict) -> None:
    store, aggregation = round_["store"], round_["aggregation"]
    with pytest.raises(InvalidInputError, match="2 clients"):
        prove_aggregation(store, aggregation["id"], [round_["weights"]])
    with pytest.raises(InvalidInputError, match="not an aggregation circuit"):
        prove_aggregation(store, round_["step_circuit"]["id"], [round_["weights"]] * 2)
    with pytest.raises(InvalidInputError, match="non-negative"):
        compile_aggregation(3, [1.0, -1.0], 13, store, Settings(data_dir=store.root))
