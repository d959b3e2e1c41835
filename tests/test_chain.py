"""On-chain verification against a real anvil node: the contract agrees with ezkl."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import ezkl
import numpy as np
import pytest

from conftest import calibration_data, make_mlp
from prover.chain.client import Chain, ChainError, connect
from prover.chain.evm_verifier import verifier_artifact
from prover.chain.node import ANVIL_DEV_KEY, LocalChain, free_port
from prover.chain.onchain import deploy_verifier, verify_onchain
from prover.chain.solidity import EIP170_LIMIT, SolidityError, compile_sources
from prover.circuits.compiler import CompileOptions, compile_model
from prover.circuits.search import SearchSpace
from prover.config import Settings
from prover.proving.proofs import export_proof, prove_input
from prover.store import ArtifactStore

SMALL = SearchSpace(scales=(10,), legs=(3,), inner_cols=(2,))


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    with LocalChain() as node:
        yield connect(node.rpc_url, ANVIL_DEV_KEY)


def _ezkl_verify(store: ArtifactStore, circuit: dict, proof: Path) -> bool:
    cdir = store.path("circuits", circuit["id"])
    try:
        return bool(
            ezkl.verify(
                str(proof),
                str(cdir / "settings.json"),
                str(cdir / "vk.key"),
                str(store.srs_path(circuit)),
                False,
            )
        )
    except RuntimeError:
        return False


def test_verifier_compiles_within_eip170_and_is_cached(
    compiled: dict, session_store: ArtifactStore
) -> None:
    artifact = verifier_artifact(session_store, compiled["id"])
    assert 0 < artifact["runtime_size"] < EIP170_LIMIT
    assert [f["name"] for f in artifact["abi"]] == ["verifyProof"]
    assert (session_store.path("circuits", compiled["id"]) / "evm" / "Verifier.sol").is_file()
    assert verifier_artifact(session_store, compiled["id"]) == artifact


def test_onchain_answer_agrees_with_ezkl(
    compiled: dict, session_store: ArtifactStore, chain: Chain, sample_input: dict, tmp_path: Path
) -> None:
    deployment = deploy_verifier(session_store, compiled["id"], chain)
    assert deployment["gas_used"] > 0 and deployment["chain_id"] == 31337
    proof = prove_input(session_store, compiled["id"], sample_input)
    good = export_proof(session_store, proof["id"], tmp_path / "good.json")
    answer = verify_onchain(chain, deployment["verifier_address"], good)
    assert answer["valid"] is True and _ezkl_verify(session_store, compiled, good) is True
    assert answer["gas"] > 100_000

    doc = json.loads(good.read_text())
    rng = np.random.default_rng(11)
    cases = []
    for position in rng.integers(0, len(doc["proof"]), size=8):
        bad = json.loads(good.read_text())
        bad["proof"][int(position)] ^= 1 << int(rng.integers(0, 8))
        cases.append(bad)
    changed = json.loads(good.read_text())
    changed["instances"][0][-1], changed["instances"][0][0] = (
        changed["instances"][0][0],
        changed["instances"][0][-1],
    )
    cases.append(changed)
    for i, case in enumerate(cases):
        path = tmp_path / f"bad{i}.json"
        path.write_text(json.dumps(case))
        onchain = verify_onchain(chain, deployment["verifier_address"], path)
        assert onchain["valid"] is False
        assert onchain["valid"] == _ezkl_verify(session_store, compiled, path)


def test_proof_for_another_circuit_is_rejected(
    compiled: dict, session_store: ArtifactStore, chain: Chain, sample_input: dict, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "other", measure_top=1)
    store = ArtifactStore(settings.data_dir)
    other = compile_model(
        make_mlp(tmp_path / "other.onnx", seed=5),
        calibration_data(),
        CompileOptions(space=SMALL),
        store,
        settings,
    )
    proof = prove_input(store, other["id"], sample_input)
    path = export_proof(store, proof["id"], tmp_path / "other-proof.json")
    deployment = deploy_verifier(session_store, compiled["id"], chain)
    assert verify_onchain(chain, deployment["verifier_address"], path)["valid"] is False


def test_redeploy_reuses_unless_forced(
    compiled: dict, session_store: ArtifactStore, chain: Chain
) -> None:
    first = deploy_verifier(session_store, compiled["id"], chain)
    again = deploy_verifier(session_store, compiled["id"], chain)
    assert again["reused"] is True and again["verifier_address"] == first["verifier_address"]
    forced = deploy_verifier(session_store, compiled["id"], chain, force=True)
    assert forced["reused"] is False and forced["verifier_address"] != first["verifier_address"]


def test_unreachable_rpc_and_bad_key() -> None:
    with pytest.raises(ChainError, match="no EVM JSON-RPC answers"):
        connect(f"http://127.0.0.1:{free_port()}", ANVIL_DEV_KEY)


def test_bad_key_is_refused(chain: Chain) -> None:
    url = chain.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    with pytest.raises(ChainError, match="private key"):
        connect(url, "0x1234")


def test_solidity_errors_are_reported() -> None:
    with pytest.raises(SolidityError, match="Solidity compilation failed"):
        compile_sources({"Bad.sol": "pragma solidity ^0.8.0; contract C { function f( }"})


def test_cli_deploy_and_verify_onchain(
    compiled: dict, session_settings: Settings, sample_input: dict, tmp_path: Path
) -> None:
    from test_cli import one_json, run_cli

    data = session_settings.data_dir
    inp = tmp_path / "in.json"
    inp.write_text(json.dumps(sample_input))
    proof = one_json(run_cli(data, "prove", compiled["id"], "--input", str(inp), "--json"))
    with LocalChain() as node:
        deployed = one_json(
            run_cli(data, "deploy", compiled["id"], "--rpc", node.rpc_url, "--json")
        )
        assert deployed["verifier_address"].startswith("0x") and deployed["gas_used"] > 0
        result = run_cli(
            data, "verify", proof["proof_id"], "--onchain", "--rpc", node.rpc_url, "--json"
        )
        answer = one_json(result)
        assert answer["valid"] is True and answer["chain_id"] == 31337
        assert answer["verifier_address"] == deployed["verifier_address"]
    dead = run_cli(
        data, "deploy", compiled["id"], "--rpc", f"http://127.0.0.1:{free_port()}", "--json"
    )
    assert dead.returncode == 1 and one_json(dead)["error"]["code"] == "chain_error"
