"""The on-chain training ledger against a real anvil node, with real step proofs."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.chain import OTHER_KEY
from helpers.models import step_batch, step_model
from prover.chain.client import Chain, connect
from prover.chain.contracts import contract, transact
from prover.chain.evm_verifier import verifier_artifact
from prover.chain.ledger import (
    deploy_ledger,
    record_run,
    run_key,
    run_state,
    schedule_root,
    start_federated_run,
    start_run,
    submit_round,
    submit_step,
)
from prover.chain.onchain import call_verifier, verifier_arguments
from prover.chain.solidity import EIP170_LIMIT
from prover.config import Settings
from prover.errors import ChainError, InvalidInputError
from prover.store import ArtifactStore
from prover.training.federated import compile_aggregation, prove_aggregation
from prover.training.step_export import flatten_params
from prover.training.steps import commitment, compile_step, prove_step

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def proven(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One step circuit (ezkl's reusable verifier) and its proofs: steps 1 and 2 of a run
    from w0; a federated round of two clients from w0 (client 1's step is step 1) with its
    aggregation proof (the aggregation circuit has its own verifier); a second round from
    the first round's global weights."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("ledger"), measure_top=1)
    store = ArtifactStore(settings.data_dir)
    # Step circuits' own verifiers exceed EIP-170 (even tiny ones: 30-60 kB): compile_step
    # makes keys for ezkl's reusable verifier.
    circuit = compile_step(step_model(), "mse", 0.5, *step_batch(0), store, settings)
    scale = circuit["training"]["scale"]
    w0 = flatten_params(step_model())
    step1 = prove_step(store, circuit["id"], w0, *step_batch(0))
    step2 = prove_step(store, circuit["id"], step1["new_weights"], *step_batch(1))
    client2 = prove_step(store, circuit["id"], w0, *step_batch(1))
    first = [step1["new_weights"], client2["new_weights"]]
    aggregation = compile_aggregation(
        len(w0), [1, 1], scale, store, settings, sample_weights=[np.asarray(w) for w in first]
    )
    round1 = prove_aggregation(store, aggregation["id"], first)
    global1 = round1["global_weights"]
    next_clients = [prove_step(store, circuit["id"], global1, *step_batch(t)) for t in (2, 3)]
    round2 = prove_aggregation(store, aggregation["id"], [s["new_weights"] for s in next_clients])
    return {
        "store": store,
        "circuit": circuit,
        "initial": commitment(w0, scale),
        "steps": [step1, step2],
        "round1": ([step1, client2], round1),
        "round2": (next_clients, round2),
        "aggregation": aggregation,
    }


def _spent(chain: Chain) -> tuple[int, int]:
    """(balance, nonce) of the sender: unchanged when a refused call sent nothing."""
    address = chain.account.address
    return chain.w3.eth.get_balance(address), chain.w3.eth.get_transaction_count(address)


def _refused(chain: Chain, call: object) -> str:
    """The ledger's error for a call it refuses (a ChainError from the simulation)."""
    with pytest.raises(ChainError) as caught:
        transact(chain, call)
    return str(caught.value.details["revert"])


def test_steps_are_accepted_only_in_order(proven: dict, chain: Chain) -> None:
    store, (step1, step2) = proven["store"], proven["steps"]
    started = start_run(chain, store, "run-a", proven["circuit"]["id"], proven["initial"])
    assert started["gas_used"] > 0 and started["initial_weights"] == proven["initial"]
    state = run_state(chain, store, "run-a")
    assert state["steps"] == 0 and state["current_weights"] == proven["initial"]
    assert state["step_verifier"] == started["step_verifier"] and not state["federated"]

    before = _spent(chain)
    early = submit_step(chain, store, "run-a", step2["proof_id"])
    assert early["accepted"] is False and early["tx_hash"] is None
    expected = proven["initial"][2:]
    assert early["reason"] == f"OutOfOrder({expected}, {step2['commitments']['weights_in'][2:]})"
    assert _spent(chain) == before

    first = submit_step(chain, store, "run-a", step1["proof_id"])
    assert first["accepted"] is True, first["reason"]
    assert first["event"] == {"name": "StepAccepted", "index": 0, **step1["commitments"]}
    # The ledger adds little to the verifier's own cost (a transaction sending the proof
    # and the VKA straight to the verifier), and the VKA is not in the calldata.
    path = store.path("proofs", step1["proof_id"]) / "proof.json"
    artifact = verifier_artifact(store, proven["circuit"]["id"])
    direct = call_verifier(chain, artifact, started["step_verifier"], path)
    assert direct["valid"] and first["gas_used"] < direct["gas"] + 100_000

    before = _spent(chain)
    replay = submit_step(chain, store, "run-a", step1["proof_id"])
    assert replay["accepted"] is False and replay["reason"].startswith("OutOfOrder")
    assert _spent(chain) == before

    second = submit_step(chain, store, "run-a", step2["proof_id"])
    assert second["accepted"] is True, second["reason"]
    assert second["event"]["index"] == 1
    assert second["event"]["weights_in"] == first["event"]["weights_out"]
    state = run_state(chain, store, "run-a")
    assert state["steps"] == 2
    assert state["current_weights"] == step2["commitments"]["weights_out"]
    assert state["current_weights"] == commitment(step2["new_weights"], step2["scale"])
    print(f"\nsubmitStep gas: {first['gas_used']}, {second['gas_used']}; direct {direct['gas']}")


def test_tampered_steps_are_refused(proven: dict, chain: Chain) -> None:
    store, (step1, _) = proven["store"], proven["steps"]
    start_run(chain, store, "run-b", proven["circuit"]["id"], proven["initial"])
    ledger = contract(chain, "TrainingLedger", deploy_ledger(chain, store))
    key = run_key("run-b")
    path = store.path("proofs", step1["proof_id"]) / "proof.json"
    proof, instances = verifier_arguments(path)
    before = _spent(chain)
    for position in (100, len(proof) // 2, len(proof) - 1):
        bad = bytearray(proof)
        bad[position] ^= 0x01
        reason = _refused(chain, ledger.functions.submitStep(key, bytes(bad), instances, []))
        assert reason == f"InvalidProof({key.hex()}, 0)", reason
    # Another batch commitment (the proof was made on batch 0): the proof does not verify.
    other_batch = [instances[0], instances[2], *instances[2:]]
    reason = _refused(chain, ledger.functions.submitStep(key, proof, other_batch, []))
    assert reason.startswith("InvalidProof")
    assert _refused(chain, ledger.functions.submitStep(key, proof, instances[:4], [])) == (
        "BadInstances(0, 5, 4)"
    )
    assert _spent(chain) == before
    assert run_state(chain, store, "run-b")["steps"] == 0
    assert submit_step(chain, store, "run-b", step1["proof_id"])["accepted"] is True


def test_run_ownership_and_identity(proven: dict, chain: Chain) -> None:
    store, (step1, _) = proven["store"], proven["steps"]
    circuit_id = proven["circuit"]["id"]
    start_run(chain, store, "run-c", circuit_id, proven["initial"])
    with pytest.raises(ChainError, match="RunExists"):
        start_run(chain, store, "run-c", circuit_id, proven["initial"])
    assert deploy_ledger(chain, store) == deploy_ledger(chain, store)
    with pytest.raises(ChainError, match="never started"):
        run_state(chain, store, "no-such-run")
    unknown = submit_step(chain, store, "no-such-run", step1["proof_id"])
    assert unknown["reason"] == f"UnknownRun({run_key('no-such-run').hex()})"

    # Only the owner advances a run, even with a valid next step.
    other = connect(chain.w3.provider.endpoint_uri, OTHER_KEY)  # type: ignore[attr-defined]
    refused = submit_step(other, store, "run-c", step1["proof_id"])
    assert refused["accepted"] is False and refused["reason"].startswith("NotOwner")
    ledger = contract(chain, "TrainingLedger", deploy_ledger(chain, store))
    transact(chain, ledger.functions.transferOwnership(run_key("run-c"), other.account.address))
    assert run_state(chain, store, "run-c")["owner"] == other.account.address
    assert submit_step(other, store, "run-c", step1["proof_id"])["accepted"] is True
    # Handed to nobody, the run is frozen and its id stays taken.
    frozen = contract(other, "TrainingLedger", ledger.address)
    transact(other, frozen.functions.transferOwnership(run_key("run-c"), "0x" + "00" * 20))
    with pytest.raises(ChainError, match="RunExists"):
        start_run(chain, store, "run-c", circuit_id, proven["initial"])
    assert submit_step(other, store, "run-c", proven["steps"][1]["proof_id"])["reason"].startswith(
        "NotOwner"
    )

    # Runs name circuits of the right kind.
    with pytest.raises(InvalidInputError, match="not a training step circuit"):
        start_run(chain, store, "run-e", proven["aggregation"]["id"], proven["initial"])
    with pytest.raises(InvalidInputError, match="not an aggregation circuit"):
        start_federated_run(chain, store, "fed-x", circuit_id, circuit_id, 2, proven["initial"])

    # A plain run takes no rounds; a 0x bytes32 run id is the key itself.
    raw = "0x" + "ab" * 32
    assert run_key(raw) == bytes.fromhex("ab" * 32)
    start_run(chain, store, raw, circuit_id, proven["initial"])
    refused = submit_round(chain, store, raw, [step1["proof_id"]], proven["round1"][1]["proof_id"])
    assert refused["reason"] == f"WrongRunKind({'ab' * 32}, False)"


def test_federated_rounds(proven: dict, chain: Chain) -> None:
    store = proven["store"]
    (step1, client2), round1 = proven["round1"]
    next_clients, round2 = proven["round2"]
    clients = [step1["proof_id"], client2["proof_id"]]
    aggregated = round1["proof_id"]
    started = start_federated_run(
        chain,
        store,
        "fed-a",
        proven["circuit"]["id"],
        proven["aggregation"]["id"],
        2,
        proven["initial"],
    )
    assert started["step_vka"] and started["aggregation_vka"] is None
    assert run_state(chain, store, "fed-a")["clients"] == 2
    assert submit_step(chain, store, "fed-a", step1["proof_id"])["reason"] == (
        f"WrongRunKind({run_key('fed-a').hex()}, True)"
    )

    before = _spent(chain)
    swapped = submit_round(chain, store, "fed-a", clients[::-1], aggregated)
    assert swapped["reason"] == "AggregationMismatch(0)"
    one = submit_round(chain, store, "fed-a", clients[:1], aggregated)
    assert one["reason"] == "WrongClientCount(2, 1)"
    early = submit_round(
        chain, store, "fed-a", [s["proof_id"] for s in next_clients], round2["proof_id"]
    )
    assert early["reason"].startswith("OutOfOrder")
    ledger = contract(chain, "TrainingLedger", deploy_ledger(chain, store))
    steps = [verifier_arguments(store.path("proofs", p) / "proof.json") for p in clients]
    proof, instances = verifier_arguments(store.path("proofs", aggregated) / "proof.json")
    bad = bytearray(proof)
    bad[len(bad) // 2] ^= 0x01
    key = run_key("fed-a")
    tampered = ledger.functions.submitRound(
        key, [p for p, _ in steps], [i for _, i in steps], bytes(bad), instances, [[], []]
    )
    assert _refused(chain, tampered) == f"InvalidProof({key.hex()}, 2)"
    assert _spent(chain) == before

    accepted = submit_round(chain, store, "fed-a", clients, aggregated)
    assert accepted["accepted"] is True, accepted["reason"]
    assert accepted["event"] == {
        "name": "RoundAccepted",
        "round": 0,
        "weights_in": proven["initial"],
        "weights_out": round1["commitments"]["global"],
    }
    state = run_state(chain, store, "fed-a")
    assert state["steps"] == 1 and state["current_weights"] == round1["commitments"]["global"]
    # The clients' steps start from the old global weights: the next round refuses them.
    replay = submit_round(chain, store, "fed-a", clients, aggregated)
    assert replay["reason"].startswith("OutOfOrder")

    # The second round's clients start from the first round's global weights.
    second = submit_round(
        chain, store, "fed-a", [s["proof_id"] for s in next_clients], round2["proof_id"]
    )
    assert second["accepted"] is True, second["reason"]
    assert second["event"]["round"] == 1
    assert second["event"]["weights_in"] == round1["commitments"]["global"]
    state = run_state(chain, store, "fed-a")
    assert state["steps"] == 2 and state["current_weights"] == round2["commitments"]["global"]
    print(f"\nsubmitRound gas (2 clients): {accepted['gas_used']}, {second['gas_used']}")


def _batch(step: dict) -> str:
    """A step's batch commitment as a schedule lists it."""
    return f"{step['commitments']['x']}:{step['commitments']['y']}"


def test_a_pinned_schedule_takes_only_its_batches_in_order(proven: dict, chain: Chain) -> None:
    store, (step1, step2) = proven["store"], proven["steps"]
    _, client2 = proven["round1"][0]  # from w0 like step 1, on step 2's batch
    circuit_id, initial = proven["circuit"]["id"], proven["initial"]
    schedule = [_batch(step1), _batch(step2), _batch(step1)]
    started = start_run(chain, store, "run-s", circuit_id, initial, batches=schedule)
    assert started["batch_schedule"] == {"root": schedule_root(schedule), "batches": 3}
    assert run_state(chain, store, "run-s")["batch_schedule"] == started["batch_schedule"]

    # A valid step from the right weights, on another batch than the scheduled one.
    before = _spent(chain)
    other = submit_step(chain, store, "run-s", client2["proof_id"])
    assert other["accepted"] is False and other["reason"] == "UnscheduledBatch(0, 0)"
    ledger = contract(chain, "TrainingLedger", deploy_ledger(chain, store))
    proof, instances = verifier_arguments(store.path("proofs", step1["proof_id"]) / "proof.json")
    short = ledger.functions.submitStep(run_key("run-s"), proof, instances, [])
    assert _refused(chain, short) == "BadBatchPath(2, 0)"
    assert _spent(chain) == before
    for step in (step1, step2):
        accepted = submit_step(chain, store, "run-s", step["proof_id"])
        assert accepted["accepted"] is True, accepted["reason"]

    # A one-batch schedule is used up after its step.
    start_run(chain, store, "run-t", circuit_id, initial, batches=[_batch(step1)])
    assert submit_step(chain, store, "run-t", step1["proof_id"])["accepted"] is True
    assert submit_step(chain, store, "run-t", step2["proof_id"])["reason"] == "ScheduleEnded(1)"
    # A root needs a count and the reverse; nothing is started.
    verifier = started["step_verifier"]
    spec = (verifier, started["step_vka"], "0x" + "00" * 20, "0x" + "00" * 20, 0,
            bytes.fromhex(initial[2:]), bytes(32), 2)  # fmt: skip
    bad = ledger.functions.startRun(run_key("run-u"), spec)
    assert _refused(chain, bad) == f"BadSchedule({'00' * 32}, 2)"


def test_a_pinned_schedule_orders_federated_clients(proven: dict, chain: Chain) -> None:
    store = proven["store"]
    (step1, client2), round1 = proven["round1"]
    next_clients, round2 = proven["round2"]
    ids = [step1["proof_id"], client2["proof_id"]]
    args = (proven["circuit"]["id"], proven["aggregation"]["id"], 2, proven["initial"])
    # Round r's client k takes batch r * clients + k.
    schedule = [_batch(s) for s in (step1, client2, *next_clients)]
    start_federated_run(chain, store, "fed-s", *args, batches=[schedule[1], *schedule[1:]])
    refused = submit_round(chain, store, "fed-s", ids, round1["proof_id"])
    assert refused["reason"] == "UnscheduledBatch(0, 0)"

    start_federated_run(chain, store, "fed-t", *args, batches=schedule)
    assert submit_round(chain, store, "fed-t", ids, round1["proof_id"])["accepted"] is True
    later = [s["proof_id"] for s in next_clients]
    accepted = submit_round(chain, store, "fed-t", later, round2["proof_id"])
    assert accepted["accepted"] is True, accepted["reason"]
    assert run_state(chain, store, "fed-t")["steps"] == 2


def test_record_run_goes_on_from_the_ledgers_count(proven: dict, chain: Chain) -> None:
    store, (step1, step2) = proven["store"], proven["steps"]
    circuit_id, initial = proven["circuit"]["id"], proven["initial"]
    schedule = [_batch(step1), _batch(step2)]
    ids = [step1["proof_id"], step2["proof_id"]]
    first = record_run(chain, store, "run-r", circuit_id, initial, schedule, ids[:1])
    assert first["started"]["batch_schedule"]["root"] == schedule_root(schedule)
    assert [s["step"] for s in first["submitted"]] == [0] and first["steps"] == 1
    rest = record_run(chain, store, "run-r", circuit_id, initial, schedule, ids)
    assert rest["started"] is None and [s["step"] for s in rest["submitted"]] == [1]
    assert rest["current_weights"] == step2["commitments"]["weights_out"]
    assert record_run(chain, store, "run-r", circuit_id, initial, schedule, ids)["submitted"] == []
    # The same id with another schedule is another run: refused, nothing sent.
    before = _spent(chain)
    with pytest.raises(ChainError, match=r"not by .* with this run's schedule"):
        record_run(chain, store, "run-r", circuit_id, initial, schedule[:1], ids)
    assert _spent(chain) == before
    # A step the ledger refuses is named (the run was started; the refused step sent nothing).
    with pytest.raises(ChainError, match=r"refused step 0: UnscheduledBatch\(0, 0\)"):
        record_run(chain, store, "run-q", circuit_id, initial, schedule[::-1], ids)
    assert run_state(chain, store, "run-q")["steps"] == 0


def test_verifiers_fit_eip170_and_the_vka_is_the_circuits(proven: dict, chain: Chain) -> None:
    store = proven["store"]
    step = verifier_artifact(store, proven["circuit"]["id"])
    aggregation = verifier_artifact(store, proven["aggregation"]["id"])
    assert step["reusable"] and not aggregation["reusable"]
    assert step["runtime_size"] <= EIP170_LIMIT and aggregation["runtime_size"] <= EIP170_LIMIT
    start_run(chain, store, "run-d", proven["circuit"]["id"], proven["initial"])
    state = run_state(chain, store, "run-d")
    ledger = contract(chain, "TrainingLedger", state["ledger_address"])
    digest = ledger.functions.vkaDigestOf(state["step_vka"]).call()
    assert "0x" + digest.hex() == step["vka_digest"]
    print(
        f"\nreusable verifier: {step['runtime_size']} bytes, step VKA: {len(step['vka'])} "
        f"words; aggregation verifier: {aggregation['runtime_size']} bytes"
    )
