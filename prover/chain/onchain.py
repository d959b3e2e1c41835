"""Circuits on a chain: verifier deployment and registration, on-chain verification, and
submission of proven results to the ProvenResults contract."""

from __future__ import annotations

import json
import secrets
import tempfile
from pathlib import Path
from typing import Any

import ezkl
from eth_abi import decode
from web3.exceptions import ContractLogicError

from prover.chain.client import Chain, ChainError, deploy
from prover.chain.contracts import contract, infrastructure, transact, vk_digest
from prover.chain.evm_verifier import verifier_artifact
from prover.proving.proofs import resolve_proof
from prover.store import ArtifactStore, canonical_digest, now_iso


def deployment_id(circuit_id: str, chain_id: int) -> str:
    return canonical_digest({"circuit": circuit_id, "chain": chain_id})


def deploy_verifier(
    store: ArtifactStore, circuit_ref: str, chain: Chain, force: bool = False
) -> dict[str, Any]:
    """Deploy a circuit's verifier; an earlier deployment on this chain is reused unless forced.

    A recorded deployment is reused only if its address still holds the same code (a
    restarted development chain loses it).
    """
    artifact = verifier_artifact(store, circuit_ref)
    circuit_id = artifact["circuit_id"]
    entry_id = deployment_id(circuit_id, chain.chain_id)
    if store.exists("deployments", entry_id) and not force:
        record = store.read_record("deployments", entry_id)
        if len(chain.w3.eth.get_code(record["verifier_address"])) == artifact["runtime_size"]:
            return {**record, "reused": True}
    address, receipt = deploy(chain, artifact["abi"], artifact["bytecode"])
    record = {
        "id": entry_id,
        "kind": "deployment",
        "circuit_id": circuit_id,
        "chain_id": chain.chain_id,
        "verifier_address": address,
        "tx_hash": receipt["transactionHash"].to_0x_hex(),
        "block": receipt["blockNumber"],
        "gas_used": receipt["gasUsed"],
        "runtime_size": artifact["runtime_size"],
        "deployer": chain.account.address,
        "created_at": now_iso(),
    }
    if store.exists("deployments", entry_id):
        store.replace_record("deployments", entry_id, record)
    else:
        with store.create("deployments", entry_id) as out:
            (out / "record.json").write_text(json.dumps(record, indent=2))
    return {**record, "reused": False}


def calldata(proof_path: Path) -> bytes:
    """ABI-encoded ``verifyProof(bytes, uint256[])`` call for an ezkl proof file."""
    with tempfile.TemporaryDirectory() as tmp:
        return bytes(ezkl.encode_evm_calldata(str(proof_path), str(Path(tmp) / "calldata"), None))


def verify_onchain(chain: Chain, verifier_address: str, proof_path: Path) -> dict[str, Any]:
    """The verifier contract's own answer for a proof file (an eth_call, no transaction)."""
    data = calldata(proof_path)
    tx = {"to": verifier_address, "data": data}
    try:
        result = chain.w3.eth.call(tx)
    except ContractLogicError as exc:
        return {"valid": False, "reason": f"verifier reverted: {exc}", "gas": None}
    valid = len(result) == 32 and int.from_bytes(result, "big") == 1
    gas = chain.w3.eth.estimate_gas(tx) if valid else None
    return {
        "valid": valid,
        "reason": None if valid else "verifier returned false",
        "gas": gas,
        "calldata_bytes": len(data),
    }


def verify_proof_onchain(
    store: ArtifactStore, proof_ref: str, chain: Chain, circuit_ref: str | None = None
) -> dict[str, Any]:
    """A stored proof (or an ezkl proof file with its circuit) checked by the circuit's
    verifier contract on ``chain``, deploying the verifier first if this chain lacks it."""
    proof_id, path, circuit = resolve_proof(store, proof_ref, circuit_ref)
    deployment = deploy_verifier(store, circuit["id"], chain)
    answer = verify_onchain(chain, deployment["verifier_address"], path)
    return {
        **answer,
        "proof_id": proof_id,
        "circuit_id": circuit["id"],
        "chain_id": chain.chain_id,
        "verifier_address": deployment["verifier_address"],
        "dev_srs": circuit["dev_srs"],
    }


def deploy_circuit(
    store: ArtifactStore, circuit_ref: str, chain: Chain, force: bool = False
) -> dict[str, Any]:
    """Deploy (or reuse) a circuit's verifier and register it in the chain's registry."""
    verifier = deploy_verifier(store, circuit_ref, chain, force)
    circuit = store.read_record("circuits", verifier["circuit_id"])
    infra = infrastructure(store, chain)
    registry = contract(chain, "ProofRegistry", infra["registry_address"])
    circuit_key = bytes.fromhex(circuit["id"])
    entry = registry.functions.get(circuit_key).call()
    register_gas = 0
    if entry[0] != verifier["verifier_address"]:
        digest = vk_digest(store.path("circuits", circuit["id"]))
        receipt = transact(
            chain,
            registry.functions.register(
                circuit_key, verifier["verifier_address"], digest, circuit["dev_srs"]
            ),
        )
        register_gas = receipt["gasUsed"]
    return {
        **verifier,
        "registry_address": infra["registry_address"],
        "results_address": infra["results_address"],
        "register_gas_used": register_gas,
    }


def _verifier_arguments(proof_path: Path) -> tuple[bytes, list[int]]:
    """(proof bytes, instances) exactly as ezkl encodes them for verifyProof."""
    data = calldata(proof_path)
    proof, instances = decode(["bytes", "uint256[]"], data[4:])
    return proof, list(instances)


def submit_proof(
    store: ArtifactStore, proof_ref: str, chain: Chain, commit_reveal: bool = False
) -> dict[str, Any]:
    """Submit a stored proof's result to ProvenResults; a rejection is reported, not sent.

    The call is simulated first, so a proof the contract would refuse costs no gas and
    comes back with the contract's reason. ``commit_reveal`` guards the credit against
    front-running (see verifier_contracts/ProvenResults.sol).
    """
    proof_id, proof_path, circuit = resolve_proof(store, proof_ref)
    deployment = deploy_circuit(store, circuit["id"], chain)
    results = contract(chain, "ProvenResults", deployment["results_address"])
    proof, instances = _verifier_arguments(proof_path)
    circuit_key = bytes.fromhex(circuit["id"])
    base = {
        "proof_id": proof_id,
        "circuit_id": circuit["id"],
        "chain_id": chain.chain_id,
        "results_address": deployment["results_address"],
        "dev_srs": circuit["dev_srs"],
    }
    gas_used = 0
    try:
        if commit_reveal:
            salt = secrets.token_bytes(32)
            commitment = results.functions.commitment(
                circuit_key, proof, instances, chain.account.address, salt
            ).call()
            gas_used += transact(chain, results.functions.commit(commitment))["gasUsed"]
            call = results.functions.reveal(circuit_key, proof, instances, salt)
        else:
            call = results.functions.submit(circuit_key, proof, instances)
        receipt = transact(chain, call)
    except ChainError as exc:
        return {
            **base,
            "accepted": False,
            "reason": exc.details.get("revert", exc.message),
            "tx_hash": None,
            "gas_used": gas_used or None,
        }
    (event,) = results.events.ResultAccepted().process_receipt(receipt)
    outputs = store.read_record("proofs", proof_id)["outputs"] if proof_id else None
    return {
        **base,
        "accepted": True,
        "outputs": outputs,
        "reason": None,
        "tx_hash": receipt["transactionHash"].to_0x_hex(),
        "block": receipt["blockNumber"],
        "gas_used": gas_used + receipt["gasUsed"],
        "event": {
            "name": event["event"],
            "circuit_id": event["args"]["circuitId"].hex(),
            "result_key": "0x" + event["args"]["resultKey"].hex(),
            "prover": event["args"]["prover"],
            "instances": [str(i) for i in event["args"]["instances"]],
        },
    }
