"""Federated training as a service: rounds of K client steps proven in parallel from the
same global weights, then one aggregation proof of their weighted average.

A federated run is a training run with ``clients`` > 0. Each round is one ``fed_round``
job, the parent of K ``client_step`` jobs (``jobs.spawn``) that as many workers prove at
once; when they have all ended, the round job proves the aggregation, checks the whole
round (``training.federated.verify_round``) and records it; its end starts the next round
from the global weights the aggregation produced. The run's ``proof_ids`` are its rounds'
aggregation proofs; each round's record (client proofs, commitments) is in the store
under ``rounds``, named by its aggregation proof.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.orm import Session

from prover.circuits.progress import Progress
from prover.circuits.ranges import check_values
from prover.config import Settings
from prover.errors import CircuitError, InvalidInputError
from prover.service import runs
from prover.service.accepting import Accepted, ready_circuit, with_retry
from prover.service.db import session_scope
from prover.service.jobs import MadeProof
from prover.service.queries import run_summary
from prover.service.tables import Job, TrainingRun
from prover.store import ArtifactStore, canonical_digest, now_iso
from prover.training.graph import check_batch_values, step_batches, step_graph, step_weights

if TYPE_CHECKING:
    from prover.chain.client import Chain

MAX_ROUNDS = 1000
MAX_CLIENTS = 64


def _rounds(
    meta: dict[str, Any], rounds: Any, run_args: dict[str, Any]
) -> list[list[dict[str, Any]]]:
    """Each round's client batches, checked against the step circuit's shapes and the
    values it can read (``run_args``); every round has the same number of clients (the
    aggregation circuit's K)."""
    if not isinstance(rounds, list) or not rounds or not isinstance(rounds[0], list):
        raise InvalidInputError(
            'rounds: a list of rounds, each a list of client batches {"x", "y"}'
        )
    clients = len(rounds[0])
    if not 2 <= clients <= MAX_CLIENTS or len(rounds) > MAX_ROUNDS:
        raise InvalidInputError(
            f"a federated run has 2 to {MAX_CLIENTS} clients and at most {MAX_ROUNDS} rounds; "
            f"got {clients} clients, {len(rounds)} rounds"
        )
    checked = []
    for r, batches in enumerate(rounds):
        if not isinstance(batches, list) or len(batches) != clients:
            raise InvalidInputError(f"round {r} does not have {clients} client batches", round=r)
        laid_out = step_batches(step_graph(meta), batches)
        check_batch_values(laid_out, run_args, f"round {r}, client")
        checked.append([{"x": x.tolist(), "y": y.tolist()} for x, y in laid_out])
    return checked


def submit_federated_run(
    settings: Settings,
    store: ArtifactStore,
    owner: str,
    circuit_id: str,
    weights: Any,
    rounds: Any,
    *,
    client_weights: list[float] | None = None,
) -> Accepted:
    """Accept a federated run of a step circuit: from ``weights``, each round's clients
    step on their own batch and the aggregation averages them (weighted by
    ``client_weights``, the clients' sample counts; equal by default). The same request
    twice is one run; a failed run submitted again resumes at its first unproven round."""
    db_url = settings.sqlalchemy_url()
    with session_scope(db_url) as session:
        ready_circuit(session, owner, circuit_id)
    meta = store.read_record("training", circuit_id)
    run_args = store.read_record("circuits", circuit_id)["settings"]
    checked = _rounds(meta, rounds, run_args)
    clients = len(checked[0])
    shares = [float(n) for n in client_weights or [1.0] * clients]
    if len(shares) != clients or min(shares) <= 0:
        raise InvalidInputError(f"client_weights: {clients} positive numbers, one per client")
    start = step_weights(step_graph(meta), weights)
    check_values(start, "starting", "weights", run_args)
    request = {
        "circuit_id": circuit_id,
        "weights": start.tolist(),
        "rounds": checked,
        "client_weights": shares,
    }
    run_id = canonical_digest({"federated": request})
    if not store.exists("runs", run_id):
        record = {"id": run_id, "type": "federated_run", "created_at": now_iso(), **request}
        store.save_record("runs", run_id, record)

    def body(session: Session) -> Accepted:
        fresh = TrainingRun(
            id=run_id,
            circuit_id=circuit_id,
            state="running",
            steps_total=len(checked),
            clients=clients,
            proof_ids=[],
            job_id="",
        )
        run, enqueue = runs.accept_run(session, fresh, owner, start_round)
        return {**run_summary(run), "clients": clients}, enqueue

    return with_retry(db_url, body)


def start_round(session: Session, run: TrainingRun, owner: str) -> tuple[str, str]:
    """Create the job of a run's next round (from the last round's global weights)."""
    after = run.proof_ids[-1] if run.proof_ids else None
    return runs.start_next(
        session, run, owner, "fed_round", {"round": len(run.proof_ids), "after": after}
    )


def global_weights(store: ArtifactStore, run_id: str, after: str | None) -> list[float]:
    """The weights a round starts from: the run's initial ones, or the global weights the
    previous round's aggregation proof produced."""
    if after is None:
        return list(store.read_record("runs", run_id)["weights"])
    outputs = store.read_record("proofs", after)["outputs"][0]
    return np.asarray(outputs, dtype=np.float64).reshape(-1).tolist()


def client_inputs(
    store: ArtifactStore, run_id: str, round_index: int, client: int, after: str | None
) -> tuple[str, list[float], Any, Any]:
    """(step circuit id, weights, x, y) of one client's step in a round."""
    run = store.read_record("runs", run_id)
    batch = run["rounds"][round_index][client]
    return run["circuit_id"], global_weights(store, run_id, after), batch["x"], batch["y"]


def aggregate_round(
    store: ArtifactStore,
    settings: Settings,
    run_id: str,
    after: str | None,
    client_proof_ids: list[str],
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Prove the round's aggregation of the clients' new weights and check the round; the
    round record (kept under ``rounds``, named by the aggregation proof)."""
    from prover.training.federated import compile_aggregation, prove_aggregation, verify_round

    run = store.read_record("runs", run_id)
    meta = store.read_record("training", run["circuit_id"])
    steps = [store.read_record("steps", p) for p in client_proof_ids]
    new = [np.asarray(s["new_weights"], dtype=np.float64) for s in steps]
    # Calibrated on its seeded default, not on this round's weights: one aggregation
    # circuit (and verifier on the ledger) for every round.
    circuit = compile_aggregation(
        len(run["weights"]), run["client_weights"], meta["scale"], store, settings, progress
    )
    proof = prove_aggregation(store, circuit["id"], new, progress)
    start = store.read_record("rounds", after)["global_weights_out"] if after else None
    check = verify_round(store, client_proof_ids, proof["proof_id"], start)
    if not check["valid"]:
        raise CircuitError(f"the round does not check: {check['reason']}", **check)
    record = {
        "id": proof["proof_id"],
        "type": "federated_round",
        "run_id": run_id,
        "aggregation_circuit_id": circuit["id"],
        "aggregation_proof_id": proof["proof_id"],
        "client_proof_ids": client_proof_ids,
        "losses": [s["loss"] for s in steps],
        "global_weights_in": check["global_weights_in"],
        "global_weights_out": check["global_weights_out"],
    }
    store.save_record("rounds", proof["proof_id"], record)
    made = [store.read_record("proofs", p) for p in [*client_proof_ids, proof["proof_id"]]]
    proofs = [
        {"proof_id": m["id"], "circuit_id": m["circuit_id"], "input_digest": m["input_digest"]}
        for m in made
    ]
    return {**record, "proofs": proofs}


def _round_made(_run: TrainingRun, result: dict[str, Any]) -> tuple[list[MadeProof], str]:
    """A round job makes its clients' step proofs and the aggregation proof, which the
    run records."""
    return list(result["proofs"]), result["aggregation_proof_id"]


def advance_federated(session: Session, job: Job, ok: bool) -> list[tuple[str, str]]:
    """The ending of a round job (``runs.advance``): its proofs ready, the next round's
    job from the global weights it produced."""
    return runs.advance(session, job, ok, _round_made, start_round)


def federated_view(store: ArtifactStore, run_id: str, proof_ids: list[str]) -> dict[str, Any]:
    """The rounds of a federated run so far (their records) and its global weights."""
    rounds = [store.read_record("rounds", p) for p in proof_ids]
    return {
        "rounds": [{"round": i, **r} for i, r in enumerate(rounds)],
        "final_commitment": rounds[-1]["global_weights_out"] if rounds else None,
    }


def put_federated_on_ledger(
    store: ArtifactStore,
    chain: Chain,
    run_id: str,
    proof_ids: list[str],
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Start the federated run on the ledger (batch schedule pinned, round r's client k on
    batch ``r * K + k``) unless this sender already did, then submit every round the
    ledger has not accepted yet, in order (``ledger.submit_round``). Safe to repeat."""
    from prover.chain.ledger import run_state, start_federated_run, submit_round
    from prover.errors import ChainError
    from prover.training.steps import batch_commitment, commitment

    say = progress or (lambda _m, _f: None)
    run = store.read_record("runs", run_id)
    scale = store.read_record("training", run["circuit_id"])["scale"]
    rounds = [store.read_record("rounds", p) for p in proof_ids]
    batches = [
        batch_commitment(np.asarray(b["x"]), np.asarray(b["y"]), scale)
        for clients in run["rounds"]
        for b in clients
    ]
    key = f"0x{run_id}"
    try:
        state = run_state(chain, store, key)
    except ChainError:
        say("starting the run on the ledger", 0.0)
        start_federated_run(
            chain,
            store,
            key,
            run["circuit_id"],
            rounds[0]["aggregation_circuit_id"],
            len(run["client_weights"]),
            commitment(run["weights"], scale),
            batches,
        )
        state = run_state(chain, store, key)
    submitted = []
    for index in range(state["steps"], len(rounds)):
        say(f"submitting round {index}", index / len(rounds))
        found = rounds[index]
        result = submit_round(
            chain, store, key, found["client_proof_ids"], found["aggregation_proof_id"]
        )
        if not result["accepted"]:
            raise ChainError(f"the ledger refused round {index}: {result['reason']}")
        submitted.append({"round": index, **result})
    return {"run": run_state(chain, store, key), "submitted": submitted}
