"""Batched settlement on a real anvil node: a batch-4 circuit of the tiny MLP (inputs and
outputs hashed), real proofs, every result accepted once in one transaction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from web3.logs import DISCARD

from helpers.chain import OTHER_KEY
from helpers.models import calibration_data
from prover.chain.batches import (
    batch_key,
    batch_results,
    deploy_batch_circuit,
    proof_instances,
    submit_batch,
)
from prover.chain.client import Chain, connect
from prover.chain.contracts import contract, transact
from prover.chain.onchain import deploy_circuit, submit_result, verifier_arguments
from prover.circuits.batch import compile_batch
from prover.circuits.compiler import CompileOptions
from prover.circuits.layouts import batch_input, stored_layout
from prover.circuits.search import SearchSpace, Visibility
from prover.config import Settings
from prover.errors import ChainError
from prover.proving.proofs import prove_input
from prover.store import ArtifactStore

pytestmark = pytest.mark.slow

N = 4
HASHED = Visibility(input="hashed", output="hashed")
OPTIONS = CompileOptions(
    visibility=HASHED, space=SearchSpace(scales=(10,), legs=(3,), inner_cols=(2,))
)
ITEMS = [
    [0.5, -1.25, 0.75, 2.0],
    [1.0, 0.0, -0.5, 0.25],
    [-1.5, 0.3, 0.2, -0.7],
    [0.1, 0.9, 1.2, -2.0],
]


@pytest.fixture(scope="module")
def batch(mlp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[ArtifactStore, dict]:
    """The batch-4 circuit (N copies: its own verifier fits EIP-170) and a proof of ITEMS."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("batch"), measure_top=1)
    store = ArtifactStore(settings.data_dir)
    circuit = compile_batch(
        mlp_path, N, calibration_data(), OPTIONS, store, settings, mode="copies"
    )
    layout = stored_layout(store, circuit)
    proof = prove_input(store, circuit["id"], batch_input(layout, ITEMS))
    return store, proof


def _reason(call: object, chain: Chain) -> str:
    try:
        transact(chain, call)
    except ChainError as exc:
        return str(exc.details["revert"])
    return "accepted"


def test_batch_outputs_match_onnxruntime_per_item(
    batch: tuple[ArtifactStore, dict], mlp_path: Path
) -> None:
    store, proof = batch
    # One hash per item's input and one per its output: 2 field elements per result.
    assert len(proof_instances(store, proof["id"])) == 2 * N
    session = ort.InferenceSession(str(mlp_path))
    results = batch_results(store, proof["id"])
    assert [r["index"] for r in results] == list(range(N))
    for item, result in zip(ITEMS, results, strict=True):
        (expected,) = session.run(None, {"input": np.asarray([item], dtype=np.float32)})
        got = np.asarray(result["outputs"][0])
        assert got.shape == expected.shape == (1, 2)
        assert np.allclose(got, expected, atol=0.02), (got, expected)


def test_batch_accepted_once_in_one_transaction(
    batch: tuple[ArtifactStore, dict], chain: Chain
) -> None:
    store, proof = batch
    circuit_id = proof["circuit_id"]
    deployment = deploy_circuit(store, circuit_id, chain)
    results = contract(chain, "ProvenResults", deployment["results_address"])
    key = bytes.fromhex(circuit_id)
    proof_bytes, instances = verifier_arguments(store.path("proofs", proof["id"]) / "proof.json")
    # Registered but not yet a batch circuit: no batch entry; only the owner may set N.
    assert _reason(
        results.functions.submitBatch(key, proof_bytes, instances, []), chain
    ).startswith("NotBatchCircuit")
    other = connect(chain.w3.provider.endpoint_uri, OTHER_KEY)  # type: ignore[attr-defined]
    hijack = contract(other, "ProvenResults", deployment["results_address"])
    assert _reason(hijack.functions.setBatchSize(key, 100), other).startswith("NotCircuitOwner")

    deployed = deploy_batch_circuit(store, circuit_id, chain)
    assert deployed["batch_size"] == N and deployed["batch_size_gas_used"] > 0
    assert _reason(results.functions.setBatchSize(key, N + 1), chain).startswith("BatchSizeFixed")

    accepted = submit_batch(store, proof["id"], chain)
    assert accepted["accepted"] is True, accepted["reason"]
    receipt = chain.w3.eth.get_transaction_receipt(accepted["tx_hash"])
    block = chain.w3.eth.get_block(receipt["blockNumber"])
    assert len(block["transactions"]) == 1 and receipt["status"] == 1
    assert len(results.events.BatchResultAccepted().process_receipt(receipt, errors=DISCARD)) == N
    assert accepted["batch_key"] == batch_key(circuit_id, instances)
    expected = batch_results(store, proof["id"])
    assert [r["result_key"] for r in accepted["results"]] == [r["result_key"] for r in expected]
    assert len({r["result_key"] for r in accepted["results"]}) == N
    for r in accepted["results"]:
        on_chain = results.functions.batchResultKey(
            bytes.fromhex(accepted["batch_key"][2:]), r["index"]
        ).call()
        assert "0x" + on_chain.hex() == r["result_key"]
    stored = results.functions.results(bytes.fromhex(accepted["batch_key"][2:])).call()
    assert stored[0] == chain.account.address
    assert 0 < accepted["gas_per_result"] * N <= accepted["gas_used"] + N

    replay = submit_batch(store, proof["id"], chain)
    assert replay["accepted"] is False and replay["reason"].startswith("AlreadyAccepted")
    # Nor through the single entry point: the batch is stored under the same key.
    again = submit_result(store, proof["id"], chain)
    assert again["accepted"] is False and again["reason"].startswith("AlreadyAccepted")


def test_tampered_batch_is_rejected(batch: tuple[ArtifactStore, dict], chain: Chain) -> None:
    store, first = batch
    layout = stored_layout(store, store.read_record("circuits", first["circuit_id"]))
    proof = prove_input(store, first["circuit_id"], batch_input(layout, ITEMS[::-1]))
    deployment = deploy_batch_circuit(store, proof["circuit_id"], chain)
    results = contract(chain, "ProvenResults", deployment["results_address"])
    key = bytes.fromhex(proof["circuit_id"])
    proof_bytes, instances = verifier_arguments(store.path("proofs", proof["id"]) / "proof.json")
    for position in range(len(instances)):  # each item's input hash and output hash
        tampered = list(instances)
        tampered[position] = (tampered[position] + 1) % (1 << 254)
        call = results.functions.submitBatch(key, proof_bytes, tampered, [])
        assert _reason(call, chain).startswith("InvalidProof")
    swapped = instances[2:4] + instances[:2] + instances[4:]  # two results' hashes swapped
    call = results.functions.submitBatch(key, proof_bytes, swapped, [])
    assert _reason(call, chain).startswith("InvalidProof")
    flipped = bytearray(proof_bytes)
    flipped[100] ^= 0x80
    call = results.functions.submitBatch(key, bytes(flipped), instances, [])
    assert _reason(call, chain).startswith("InvalidProof")
    # The untouched proof (the same items in another order: another batch) is accepted,
    # here by commit-then-reveal, which batches take too: N results credited to the committer.
    revealed = submit_batch(store, proof["id"], chain, commit_reveal=True)
    assert revealed["accepted"] and revealed["commit_gas_used"] > 0, revealed
    receipt = chain.w3.eth.get_transaction_receipt(revealed["tx_hash"])
    assert receipt["to"] == results.address
    assert (
        results.decode_function_input(chain.w3.eth.get_transaction(revealed["tx_hash"])["input"])[
            0
        ].fn_name
        == "reveal"
    )
    events = results.events.BatchResultAccepted().process_receipt(receipt, errors=DISCARD)
    assert [e["args"]["index"] for e in events] == list(range(N))
    assert {e["args"]["prover"] for e in events} == {chain.account.address}
    assert (
        events[0]["args"]["batchKey"].hex()
        != batch_key(first["circuit_id"], proof_instances(store, first["id"]))[2:]
    )
    assert submit_batch(store, proof["id"], chain)["reason"].startswith("AlreadyAccepted")
