"""On-chain verification against a real anvil node: the contract agrees with ezkl."""

from __future__ import annotations

import json
from pathlib import Path

import ezkl
import numpy as np
import pytest

from helpers.chain import OTHER_KEY
from helpers.cli import one_json, run_cli
from helpers.models import calibration_data, make_mlp
from prover.chain.client import Chain, connect
from prover.chain.contracts import contract, transact
from prover.chain.evm_verifier import verifier_artifact
from prover.chain.node import LocalChain, free_port
from prover.chain.onchain import (
    call_verifier,
    deploy_circuit,
    deploy_verifier,
    submit_result,
    verifier_arguments,
    verify_onchain,
)
from prover.chain.solidity import EIP170_LIMIT
from prover.circuits.compiler import CompileOptions, compile_model
from prover.circuits.search import SearchSpace
from prover.config import Settings
from prover.errors import ChainError
from prover.proving.proofs import export_proof, prove_input
from prover.store import ArtifactStore

pytestmark = pytest.mark.slow

SMALL = SearchSpace(scales=(10,), legs=(3,), inner_cols=(2,))


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
    artifact = verifier_artifact(session_store, compiled["id"])
    assert deployment["gas_used"] > 0 and deployment["chain_id"] == 31337
    proof = prove_input(session_store, compiled["id"], sample_input)
    good = export_proof(session_store, proof["id"], tmp_path / "good.json")
    answer = call_verifier(chain, artifact, deployment["verifier_address"], good)
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
        onchain = call_verifier(chain, artifact, deployment["verifier_address"], path)
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
    artifact = verifier_artifact(session_store, compiled["id"])
    assert call_verifier(chain, artifact, deployment["verifier_address"], path)["valid"] is False


def test_redeploy_reuses_unless_forced(
    compiled: dict, session_store: ArtifactStore, chain: Chain
) -> None:
    first = deploy_verifier(session_store, compiled["id"], chain)
    again = deploy_verifier(session_store, compiled["id"], chain)
    assert again["reused"] is True and again["verifier_address"] == first["verifier_address"]
    forced = deploy_verifier(session_store, compiled["id"], chain, force=True)
    assert forced["reused"] is False and forced["verifier_address"] != first["verifier_address"]


def test_bad_key_is_refused(chain: Chain) -> None:
    url = chain.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    with pytest.raises(ChainError, match="private key"):
        connect(url, "0x1234")


def test_cli_deploy_and_verify_onchain(
    compiled: dict, session_settings: Settings, sample_input: dict, tmp_path: Path
) -> None:
    data = session_settings.data_dir
    inp = tmp_path / "in.json"
    inp.write_text(json.dumps(sample_input))
    proof = one_json(run_cli(data, "prove", compiled["id"], "--input", str(inp), "--json"))
    with LocalChain() as node:
        early = run_cli(data, "submit", proof["proof_id"], "--rpc", node.rpc_url, "--json")
        assert early.returncode == 1 and "prover deploy" in one_json(early)["error"]["message"]
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
    assert dead.returncode == 1 and one_json(dead)["error"]["code"] == "chain_unavailable"


def _submit_file(
    chain: Chain, results_address: str, circuit_id: str, proof_file: Path, vka: list[bytes]
) -> str:
    """Send submit() for a proof file; returns 'accepted' or the contract's error."""

    results = contract(chain, "ProvenResults", results_address)
    proof, instances = verifier_arguments(proof_file)
    try:
        transact(chain, results.functions.submit(bytes.fromhex(circuit_id), proof, instances, vka))
    except ChainError as exc:
        return exc.details["revert"]
    return "accepted"


def test_results_contract_accepts_only_valid_proofs_once(
    compiled: dict, session_store: ArtifactStore, chain: Chain, tmp_path: Path
) -> None:

    deployment = deploy_circuit(session_store, compiled["id"], chain)
    proof = prove_input(session_store, compiled["id"], [[0.3, -0.2, 0.9, 1.1]])
    good = export_proof(session_store, proof["id"], tmp_path / "good.json")

    rng = np.random.default_rng(5)
    doc = json.loads(good.read_text())
    for position in rng.integers(0, len(doc["proof"]), size=5):
        bad = json.loads(good.read_text())
        bad["proof"][int(position)] ^= 0x80
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        reason = _submit_file(
            chain, deployment["results_address"], compiled["id"], tmp_path / "bad.json", []
        )
        assert reason.startswith("InvalidProof"), reason
    changed = json.loads(good.read_text())
    changed["instances"][0][0] = changed["instances"][0][1]
    (tmp_path / "changed.json").write_text(json.dumps(changed))
    assert _submit_file(
        chain, deployment["results_address"], compiled["id"], tmp_path / "changed.json", []
    ).startswith("InvalidProof")
    assert _submit_file(chain, deployment["results_address"], "ab" * 32, good, []).startswith(
        "UnknownCircuit"
    )

    accepted = submit_result(session_store, proof["id"], chain)
    assert accepted["accepted"] is True and accepted["gas_used"] > 0
    assert accepted["event"]["name"] == "ResultAccepted"
    assert accepted["event"]["prover"] == chain.account.address
    assert accepted["event"]["circuit_id"] == compiled["id"]
    expected = [str(int(x, 16)) for x in proof["instances"][0]]
    assert accepted["event"]["instances"] == expected
    replay = submit_result(session_store, proof["id"], chain)
    assert replay["accepted"] is False and replay["reason"].startswith("AlreadyAccepted")


def test_registry_refuses_unauthorised_update(
    compiled: dict, session_store: ArtifactStore, chain: Chain
) -> None:

    deployment = deploy_circuit(session_store, compiled["id"], chain)
    other = connect(chain.w3.provider.endpoint_uri, OTHER_KEY)  # type: ignore[attr-defined]
    registry = contract(other, "ProofRegistry", deployment["registry_address"])
    hijack = registry.functions.register(
        bytes.fromhex(compiled["id"]), deployment["registry_address"], b"\0" * 32, False, False
    )
    with pytest.raises(ChainError, match="NotOwner"):
        transact(other, hijack)
    entry = registry.functions.get(bytes.fromhex(compiled["id"])).call()
    assert entry[0] == deployment["verifier_address"] and entry[4] == chain.account.address


def test_commit_reveal_credits_the_committer(
    compiled: dict, session_store: ArtifactStore, chain: Chain
) -> None:

    proof = prove_input(session_store, compiled["id"], [[1.5, 0.5, -0.5, 0.25]])
    deployment = deploy_circuit(session_store, compiled["id"], chain)
    results = contract(chain, "ProvenResults", deployment["results_address"])
    proof_bytes, instances = verifier_arguments(
        session_store.path("proofs", proof["id"]) / "proof.json"
    )
    reveal = results.functions.reveal(
        bytes.fromhex(compiled["id"]), proof_bytes, instances, [], b"\1" * 32
    )
    with pytest.raises(ChainError, match="NoCommitment"):
        transact(chain, reveal)
    accepted = submit_result(session_store, proof["id"], chain, commit_reveal=True)
    assert accepted["accepted"] is True, accepted["reason"]
    assert accepted["event"]["prover"] == chain.account.address


def test_reusable_verifier_path(
    mlp_path: Path,
    settings: Settings,
    store: ArtifactStore,
    chain: Chain,
    sample_input: dict,
    tmp_path: Path,
) -> None:
    """Circuits too big for their own verifier use ezkl's shared verifier plus a VKA."""

    circuit = compile_model(
        mlp_path,
        calibration_data(),
        CompileOptions(space=SMALL, reusable_verifier=True),
        store,
        settings,
    )
    artifact = verifier_artifact(store, circuit["id"])
    assert artifact["reusable"] and artifact["vka"] and artifact["runtime_size"] < EIP170_LIMIT
    deployment = deploy_circuit(store, circuit["id"], chain)
    assert deployment["reusable"] and deployment["register_gas_used"] > 0
    proof = prove_input(store, circuit["id"], sample_input)
    assert verify_onchain(store, proof["id"], chain)["valid"] is True

    good = export_proof(store, proof["id"], tmp_path / "good.json")
    bad = json.loads(good.read_text())
    bad["proof"][200] ^= 0x04
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    answer = call_verifier(chain, artifact, deployment["verifier_address"], tmp_path / "bad.json")
    assert answer["valid"] is False
    assert _ezkl_verify(store, circuit, tmp_path / "bad.json") is False
    assert _submit_file(
        chain, deployment["results_address"], circuit["id"], good, [b"\0" * 32]
    ).startswith("WrongVka")

    accepted = submit_result(store, proof["id"], chain)
    assert accepted["accepted"] is True, accepted["reason"]
    assert submit_result(store, proof["id"], chain)["reason"].startswith("AlreadyAccepted")
