"""Batched settlement: every result of a batch proof accepted in one transaction.

A batch circuit (``prover.circuits.batch``) proves N inferences at once. ProvenResults
stores the batch once, under ``batch_key`` = keccak256(abi.encode(circuitId, instances))
(the key a single result has), and emits one ``BatchResultAccepted`` per result, keyed
``result_key(batch_key, i)`` = keccak256(abi.encode(batchKey, i)). The verification and
the one storage write are shared by the N results; each result adds one log.

The keys are computed here exactly as the contract computes them, so a service can record
them for a proof before (or without) submitting it.
"""

from __future__ import annotations

from typing import Any

from eth_abi import encode
from eth_utils import keccak
from web3.logs import DISCARD

from prover.chain.client import Chain
from prover.chain.contracts import contract, transact
from prover.chain.evm_verifier import verifier_artifact
from prover.chain.onchain import accepting_call, deploy_circuit, registered, verifier_arguments
from prover.chain.submission import submit
from prover.circuits.layouts import BatchLayout, split_outputs, stored_layout
from prover.errors import ChainError
from prover.proving.proofs import resolve_proof
from prover.store import ArtifactStore


def batch_key(circuit_id: str, instances: list[int]) -> str:
    """The key a batch (or a single result) is stored under: 0x-hex keccak256."""
    material = encode(["bytes32", "uint256[]"], [bytes.fromhex(circuit_id), instances])
    return "0x" + keccak(material).hex()


def result_key(batch: str, index: int) -> str:
    """The key of result ``index`` of the batch stored under ``batch``."""
    return "0x" + keccak(encode(["bytes32", "uint256"], [bytes.fromhex(batch[2:]), index])).hex()


def proof_instances(store: ArtifactStore, proof_id: str) -> list[int]:
    """A stored proof's public instances, flat, in the order the verifier takes them."""
    rows = store.read_record("proofs", proof_id)["instances"]
    return [int(value, 16) for row in rows for value in row]


def batch_results(store: ArtifactStore, proof_ref: str) -> list[dict[str, Any]]:
    """Each result of a stored batch proof: index, result key (as the chain will emit it)
    and outputs. Sends nothing; for a service to record results before settlement."""
    record = store.read_record("proofs", proof_ref)
    circuit = store.read_record("circuits", record["circuit_id"])
    layout = stored_layout(store, circuit)
    key = batch_key(circuit["id"], proof_instances(store, record["id"]))
    outputs = split_outputs(layout, record["outputs"])
    return [
        {
            "index": i,
            "result_key": result_key(key, i),
            "outputs": [o.tolist() for o in outputs[i]],
        }
        for i in range(layout.n)
    ]


def _ensure_batch_size(chain: Chain, results: Any, circuit_id: str, layout: BatchLayout) -> int:
    """Set the circuit's batch size on chain if unset (the sender must own the circuit's
    registry entry); the gas that took (0 when it was set)."""
    circuit_key = bytes.fromhex(circuit_id)
    size = int(results.functions.batchSizes(circuit_key).call())
    if size == layout.n:
        return 0
    if size != 0:
        raise ChainError(
            f"circuit {circuit_id[:16]} is a batch of {size} on chain, not {layout.n}",
            revert=f"BatchSizeFixed(0x{circuit_id}, {size})",
        )
    return int(transact(chain, results.functions.setBatchSize(circuit_key, layout.n))["gasUsed"])


def deploy_batch_circuit(
    store: ArtifactStore, circuit_ref: str, chain: Chain, force: bool = False
) -> dict[str, Any]:
    """``deploy_circuit`` for a batch circuit, then its batch size set on ProvenResults
    (right after registering: a result accepted before it counts as one result)."""
    circuit = store.read_record("circuits", circuit_ref)
    layout = stored_layout(store, circuit)
    deployment = deploy_circuit(store, circuit["id"], chain, force)
    results = contract(chain, "ProvenResults", deployment["results_address"])
    gas = _ensure_batch_size(chain, results, circuit["id"], layout)
    return {**deployment, "batch_size": layout.n, "batch_size_gas_used": gas}


def submit_batch(
    store: ArtifactStore, proof_ref: str, chain: Chain, commit_reveal: bool = False
) -> dict[str, Any]:
    """Accept every result of a stored batch proof in one transaction (with
    ``commit_reveal``: a commitment, then the reveal); a rejection (replay, invalid
    proof) is reported with the contract's reason, not sent.

    The circuit must be deployed (``deploy_batch_circuit``); its batch size is set here if
    it is not yet. ``gas_used`` is the acceptance transaction's, ``gas_per_result`` that
    over N (a refusal's ``gas_used``: what was sent before it).
    """
    record = store.read_record("proofs", proof_ref)
    proof_id, proof_path, circuit = resolve_proof(store, record["id"])
    assert proof_id is not None
    layout = stored_layout(store, circuit)
    deployment = registered(store, circuit["id"], chain)
    results = contract(chain, "ProvenResults", deployment["results_address"])
    vka = [bytes.fromhex(w[2:]) for w in verifier_artifact(store, circuit["id"]).get("vka", [])]
    proof, instances = verifier_arguments(proof_path)
    base = {
        "proof_id": proof_id,
        "circuit_id": circuit["id"],
        "chain_id": chain.chain_id,
        "results_address": deployment["results_address"],
        "dev_srs": circuit["dev_srs"],
        "batch_size": layout.n,
        "batch_key": batch_key(circuit["id"], instances),
        "calldata_instances": len(instances),
    }
    key = bytes.fromhex(circuit["id"])

    def prepare() -> tuple[Any, dict[str, int]]:
        setup_gas = _ensure_batch_size(chain, results, circuit["id"], layout)
        call, spent = accepting_call(
            chain, results, key, proof, instances, vka, commit_reveal, "submitBatch"
        )
        return call, {"batch_size_gas_used": setup_gas, **spent}

    answer, receipt = submit(chain, results, prepare)
    if receipt is None:
        return {**base, **answer}
    return {**base, **answer, **_accepted(store, results, receipt, layout, proof_id)}


def _accepted(
    store: ArtifactStore, results: Any, receipt: Any, layout: BatchLayout, proof_id: str
) -> dict[str, Any]:
    """What an accepting receipt says: the batch, and each result with its outputs; its
    ``gas_used`` is the acceptance transaction's alone, for ``gas_per_result``."""
    (batch,) = results.events.BatchAccepted().process_receipt(receipt, errors=DISCARD)
    events = results.events.BatchResultAccepted().process_receipt(receipt, errors=DISCARD)
    outputs = split_outputs(layout, store.read_record("proofs", proof_id)["outputs"])
    gas = int(receipt["gasUsed"])
    return {
        "gas_used": gas,
        "gas_per_result": round(gas / layout.n),
        "prover": batch["args"]["prover"],
        "results": [
            {
                "index": int(e["args"]["index"]),
                "result_key": "0x" + e["args"]["resultKey"].hex(),
                "outputs": [o.tolist() for o in outputs[int(e["args"]["index"])]],
            }
            for e in events
        ],
    }


def request_result_key(record: dict[str, Any]) -> str:
    """The on-chain key of a request proven in a batch (a ``batched`` record): its result
    in its batch proof's settlement."""
    instances = [int(value, 16) for row in record["instances"] for value in row]
    key = batch_key(record["circuit_id"], instances)
    return result_key(key, record["batch"]["position"])


def submit_request(
    store: ArtifactStore, proof_ref: str, chain: Chain, commit_reveal: bool = False
) -> dict[str, Any]:
    """Settle a request proven in a batch: its batch proof, in one transaction for every
    request in it (``submit_batch``). When an earlier request of the batch settled it,
    nothing is sent: the request's result is on chain already, and the answer says where."""
    record = store.read_record("proofs", proof_ref)
    place = record["batch"]
    settled = submit_batch(store, place["proof_id"], chain, commit_reveal)
    own = {
        "proof_id": record["id"],
        "batch_proof_id": place["proof_id"],
        "position": place["position"],
        "result_key": request_result_key(record),
        "outputs": record["outputs"],
    }
    if settled["accepted"] or "AlreadyAccepted" not in str(settled["reason"]):
        return {**settled, **own, "already_settled": False}
    deployment = registered(store, record["circuit_id"], chain)
    results = contract(chain, "ProvenResults", deployment["results_address"])
    prover, block = results.functions.results(bytes.fromhex(settled["batch_key"][2:])).call()
    return {
        **settled,
        **own,
        "accepted": True,
        "reason": None,
        "already_settled": True,
        "prover": prover,
        "block": int(block),
    }
