"""Circuits on a chain: verifier deployment and registration, on-chain verification, and
submission of proven results to the ProvenResults contract."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import ezkl
from eth_abi import decode, encode
from eth_account.messages import encode_defunct
from eth_utils import function_signature_to_4byte_selector, keccak
from web3.exceptions import ContractLogicError
from web3.types import TxParams

from prover.chain.client import Chain, deploy
from prover.chain.contracts import contract, infrastructure, transact, vk_digest
from prover.chain.evm_verifier import verifier_artifact
from prover.chain.submission import submit
from prover.errors import ChainError
from prover.proving.proofs import resolve_proof
from prover.store import ArtifactStore, canonical_digest, now_iso

# verifyProof of a circuit's own verifier, and of ezkl's reusable verifier (with the VKA).
VERIFY = function_signature_to_4byte_selector("verifyProof(bytes,uint256[])")
VERIFY_WITH_VKA = function_signature_to_4byte_selector("verifyProof(bytes,uint256[],bytes32[])")


def _vka_bytes(artifact: dict[str, Any]) -> list[bytes]:
    return [bytes.fromhex(w[2:]) for w in artifact.get("vka", [])]


def deploy_verifier(
    store: ArtifactStore, circuit_ref: str, chain: Chain, force: bool = False
) -> dict[str, Any]:
    """Deploy a circuit's verifier (or the chain's shared reusable verifier); an earlier
    deployment on this chain is reused unless forced, if its address still holds the
    code (a restarted development chain loses it)."""
    return _deploy_verifier(store, verifier_artifact(store, circuit_ref), chain, force)


def _deploy_verifier(
    store: ArtifactStore, artifact: dict[str, Any], chain: Chain, force: bool
) -> dict[str, Any]:
    key = (
        {"reusable_verifier": artifact["source_digest"]}
        if artifact["reusable"]
        else {"circuit": artifact["circuit_id"]}
    )
    entry_id = canonical_digest({**key, "chain": chain.chain_id})
    extra = {"circuit_id": artifact["circuit_id"], "reusable": artifact["reusable"]}
    if store.exists("deployments", entry_id) and not force:
        record = store.read_record("deployments", entry_id)
        if len(chain.w3.eth.get_code(record["verifier_address"])) == artifact["runtime_size"]:
            return {**record, **extra, "reused": True}
    address, receipt = deploy(chain, artifact["abi"], artifact["bytecode"])
    record = {
        "id": entry_id,
        "type": "verifier",
        "chain_id": chain.chain_id,
        "verifier_address": address,
        "tx_hash": receipt["transactionHash"].to_0x_hex(),
        "block": receipt["blockNumber"],
        "gas_used": receipt["gasUsed"],
        "runtime_size": artifact["runtime_size"],
        "deployer": chain.account.address,
        "created_at": now_iso(),
    }
    store.save_record("deployments", entry_id, record)
    return {**record, **extra, "reused": False}


def deploy_circuit(
    store: ArtifactStore, circuit_ref: str, chain: Chain, force: bool = False
) -> dict[str, Any]:
    """Deploy (or reuse) a circuit's verifier and register the circuit in the registry."""
    artifact = verifier_artifact(store, circuit_ref)
    deployment = _deploy_verifier(store, artifact, chain, force)
    circuit = store.read_record("circuits", artifact["circuit_id"])
    infra = infrastructure(store, chain)
    registry = contract(chain, "ProofRegistry", infra["registry_address"])
    circuit_key = bytes.fromhex(circuit["id"])
    if artifact["reusable"]:
        digest = bytes.fromhex(artifact["vka_digest"][2:])
    else:
        digest = vk_digest(store.path("circuits", circuit["id"]))
    entry = registry.functions.get(circuit_key).call()
    register_gas = 0
    if (entry[0], entry[3]) != (deployment["verifier_address"], digest):
        if artifact["reusable"]:
            verifier = chain.w3.eth.contract(
                address=deployment["verifier_address"], abi=artifact["abi"]
            )
            receipt = transact(chain, verifier.functions.registerVka(_vka_bytes(artifact)))
            register_gas += receipt["gasUsed"]
        receipt = transact(
            chain,
            registry.functions.register(
                circuit_key,
                deployment["verifier_address"],
                digest,
                circuit["dev_srs"],
                artifact["reusable"],
            ),
        )
        register_gas += receipt["gasUsed"]
    return {
        **deployment,
        "registry_address": infra["registry_address"],
        "results_address": infra["results_address"],
        "register_gas_used": register_gas,
    }


def registered(store: ArtifactStore, circuit_id: str, chain: Chain) -> dict[str, Any]:
    """Where a circuit is registered on this chain (read from the registry, which is the
    truth); a ``ChainError`` saying to deploy first if it is not. Sends nothing."""
    infra = infrastructure(store, chain, deploy_missing=False)
    registry = contract(chain, "ProofRegistry", infra["registry_address"])
    entry = registry.functions.get(bytes.fromhex(circuit_id)).call()
    if int(entry[0], 16) == 0:
        raise ChainError(
            f"circuit {circuit_id[:16]} is not registered on chain {chain.chain_id}; "
            f"run `prover deploy {circuit_id[:16]}` first"
        )
    return {
        "verifier_address": entry[0],
        "registry_address": infra["registry_address"],
        "results_address": infra["results_address"],
    }


def verifier_arguments(proof_path: Path) -> tuple[bytes, list[int]]:
    """(proof bytes, instances) of an ezkl proof file, exactly as ezkl encodes them."""
    with tempfile.TemporaryDirectory() as tmp:
        data = bytes(ezkl.encode_evm_calldata(str(proof_path), str(Path(tmp) / "calldata"), None))
    proof, instances = decode(["bytes", "uint256[]"], data[4:])
    return proof, list(instances)


def call_verifier(
    chain: Chain, artifact: dict[str, Any], verifier_address: str, proof_path: Path
) -> dict[str, Any]:
    """The verifier contract's own answer for a proof file (an eth_call, no transaction)."""
    proof, instances = verifier_arguments(proof_path)
    if artifact["reusable"]:
        data = VERIFY_WITH_VKA + encode(
            ["bytes", "uint256[]", "bytes32[]"], [proof, instances, _vka_bytes(artifact)]
        )
    else:
        data = VERIFY + encode(["bytes", "uint256[]"], [proof, instances])
    tx: TxParams = {"to": verifier_address, "data": data}
    try:
        answer = chain.w3.eth.call(tx)
    except ContractLogicError as exc:
        return {
            "valid": False,
            "reason": f"verifier reverted: {exc}",
            "gas": None,
            "calldata_bytes": len(data),
        }
    # Both verifiers answer with a first word of 1 for a valid proof.
    valid = len(answer) >= 32 and int.from_bytes(answer[:32], "big") == 1
    return {
        "valid": valid,
        "reason": None if valid else "verifier returned false",
        "gas": chain.w3.eth.estimate_gas(tx) if valid else None,
        "calldata_bytes": len(data),
    }


def verify_onchain(
    store: ArtifactStore, proof_ref: str, chain: Chain, circuit_ref: str | None = None
) -> dict[str, Any]:
    """A stored proof (or an ezkl proof file with its circuit) checked by the circuit's
    registered verifier contract on ``chain``."""
    proof_id, path, circuit = resolve_proof(store, proof_ref, circuit_ref)
    deployment = registered(store, circuit["id"], chain)
    artifact = verifier_artifact(store, circuit["id"])
    answer = call_verifier(chain, artifact, deployment["verifier_address"], path)
    return {
        **answer,
        "proof_id": proof_id,
        "circuit_id": circuit["id"],
        "chain_id": chain.chain_id,
        "verifier_address": deployment["verifier_address"],
        "dev_srs": circuit["dev_srs"],
    }


def _salt(chain: Chain, circuit_key: bytes, proof: bytes, instances: list[int]) -> bytes:
    """A commitment's salt: secret (from the account's signature, which only the key
    holder can make) yet the same on every retry, so a retried commit-reveal repeats the
    transactions it noted instead of committing anew."""
    message = encode_defunct(keccak(circuit_key + proof + encode(["uint256[]"], [instances])))
    return keccak(bytes(chain.account.sign_message(message).signature))


def accepting_call(
    chain: Chain,
    results: Any,
    circuit_key: bytes,
    proof: bytes,
    instances: list[int],
    vka: list[bytes],
    commit_reveal: bool,
    entry: str = "submit",
) -> tuple[Any, dict[str, int]]:
    """The call that accepts a result (``entry``: ``submit`` or ``submitBatch``) and the
    gas spent before it (``commit_gas_used``), as ``submission.submit`` prepares a call:
    with ``commit_reveal``, the commitment is sent first and the call is the reveal (which
    accepts single results and batches alike)."""
    if not commit_reveal:
        call = getattr(results.functions, entry)(circuit_key, proof, instances, vka)
        return call, {"commit_gas_used": 0}
    salt = _salt(chain, circuit_key, proof, instances)
    commitment = results.functions.commitment(
        circuit_key, proof, instances, chain.account.address, salt
    ).call()
    gas = int(transact(chain, results.functions.commit(commitment))["gasUsed"])
    reveal = results.functions.reveal(circuit_key, proof, instances, vka, salt)
    return reveal, {"commit_gas_used": gas}


def submit_result(
    store: ArtifactStore, proof_ref: str, chain: Chain, commit_reveal: bool = False
) -> dict[str, Any]:
    """Submit a stored proof's result to ProvenResults; a rejection is reported, not sent.

    Each call is simulated first, so a proof the contract would refuse costs no gas and
    comes back with the contract's reason. ``commit_reveal`` guards the credit against
    front-running (see verifier_contracts/ProvenResults.sol).
    """
    proof_id, proof_path, circuit = resolve_proof(store, proof_ref)
    deployment = registered(store, circuit["id"], chain)
    vka = _vka_bytes(verifier_artifact(store, circuit["id"]))
    results = contract(chain, "ProvenResults", deployment["results_address"])
    proof, instances = verifier_arguments(proof_path)
    circuit_key = bytes.fromhex(circuit["id"])
    base = {
        "proof_id": proof_id,
        "circuit_id": circuit["id"],
        "chain_id": chain.chain_id,
        "results_address": deployment["results_address"],
        "dev_srs": circuit["dev_srs"],
    }
    answer, receipt = submit(
        chain,
        results,
        lambda: accepting_call(chain, results, circuit_key, proof, instances, vka, commit_reveal),
    )
    if receipt is None:
        return {**base, **answer}
    (event,) = results.events.ResultAccepted().process_receipt(receipt)
    return {
        **base,
        **answer,
        "outputs": store.read_record("proofs", proof_id)["outputs"] if proof_id else None,
        "event": {
            "name": event["event"],
            "circuit_id": event["args"]["circuitId"].hex(),
            "result_key": "0x" + event["args"]["resultKey"].hex(),
            "prover": event["args"]["prover"],
            "instances": [str(i) for i in instances],
        },
    }
