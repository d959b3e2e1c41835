"""A circuit compiled for verify gas, deployed on anvil: its measured verify gas and code
size are within the gas model's stated error of what the compile predicted."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.models import calibration_data
from prover.chain.client import Chain
from prover.chain.evm_verifier import verifier_artifact
from prover.chain.onchain import deploy_circuit, verify_onchain
from prover.circuits.compiler import CompileOptions, compile_model
from prover.circuits.search import SearchSpace
from prover.config import Settings
from prover.proving.proofs import prove_input
from prover.store import ArtifactStore

pytestmark = pytest.mark.slow


def test_measured_verify_gas_is_within_the_models_error(
    mlp_path: Path, settings: Settings, store: ArtifactStore, chain: Chain, sample_input: dict
) -> None:
    space = SearchSpace(scales=(10,), legs=(3,), inner_cols=(2, 1))
    options = CompileOptions(space=space, objective="verify-gas")
    circuit = compile_model(mlp_path, calibration_data(), options, store, settings)
    predicted = circuit["verify_gas"]
    assert circuit["settings"]["num_inner_cols"] == 1, "fewer columns, less gas"
    assert predicted["verifier"] == "own" and circuit["reusable_verifier"] is False
    assert predicted["chosen_by"] == "predicted gas"

    proof = prove_input(store, circuit["id"], sample_input)
    deploy_circuit(store, circuit["id"], chain)
    answer = verify_onchain(store, proof["id"], chain)
    assert answer["valid"] is True
    error = predicted["fit_error"]
    assert abs(answer["gas"] - predicted["gas"]) <= error["own"] * answer["gas"]
    size = verifier_artifact(store, circuit["id"])["runtime_size"]
    assert abs(size - predicted["own_bytes"]) <= error["own_bytes"] * size
