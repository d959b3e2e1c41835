"""Proven training as a service: step circuits, training runs (a sequence of step jobs,
each fed the previous step's proven weights), chain verification, and runs put on the
chain's TrainingLedger, for an API key.

A client exports its model's SGD step (``prover train export``; PyTorch stays on the
client) and uploads the graph with a sample step; a run is its initial weights and one
batch per step. Runs are named by content like proofs: the same request twice is one run,
and a failed run submitted again resumes after its last proven step.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from prover.circuits.progress import Progress
from prover.circuits.ranges import check_values
from prover.config import Settings
from prover.errors import ConflictError, InvalidInputError, NotFoundError
from prover.service import grants, jobs, runs
from prover.service.accepting import Accepted, ready_circuit, with_retry
from prover.service.compiles import accept_compile
from prover.service.db import session_scope
from prover.service.federated import federated_view, put_federated_on_ledger
from prover.service.jobs import MadeProof
from prover.service.queries import run_summary
from prover.service.tables import Job, TrainingRun
from prover.store import ArtifactStore, canonical_digest, now_iso, record_type
from prover.training.graph import check_batch_values, step_batches, step_graph, step_weights

if TYPE_CHECKING:
    from prover.chain.client import Chain

MAX_RUN_STEPS = 10_000


def submit_step_circuit(
    settings: Settings,
    store: ArtifactStore,
    owner: str,
    graph_path: Path,
    sample: Any,
    *,
    reusable_verifier: bool = True,
) -> Accepted:
    """Accept an exported step graph and a sample step ``{"weights", "x", "y"}`` for
    compilation into a step circuit (a compile job); everything is checked first.
    ``settings`` give the intake limits and the search's defaults."""
    from prover.training.steps import plan_step

    step = plan_step(graph_path, sample, settings, reusable_verifier)
    params = {
        "step": {
            "calibration": step.calibration,
            "tolerance": step.options.tolerance,
            "mean_update": step.mean_update,
            "reusable_verifier": reusable_verifier,
        }
    }
    return accept_compile(settings, store, owner, step.compile, params)


def _training_record(store: ArtifactStore, circuit_id: str) -> dict[str, Any]:
    if not store.exists("training", circuit_id):
        raise InvalidInputError(
            f"circuit {circuit_id} is not a training-step circuit; compile one from an "
            "exported step graph (POST /v1/training/circuits)",
            circuit_id=circuit_id,
        )
    return store.read_record("training", circuit_id)


def _batches(
    meta: dict[str, Any], batches: Any, run_args: dict[str, Any]
) -> list[dict[str, list[Any]]]:
    """Each batch checked against the step circuit's shapes (labels one-hot for CE) and
    the values it can read (``run_args``)."""
    if not isinstance(batches, list) or not batches:
        raise InvalidInputError('a run needs a list of batches [{"x": [...], "y": [...]}, ...]')
    if len(batches) > MAX_RUN_STEPS:
        raise InvalidInputError(f"a run has at most {MAX_RUN_STEPS} steps; got {len(batches)}")
    laid_out = step_batches(step_graph(meta), batches)
    check_batch_values(laid_out, run_args)
    return [{"x": x.tolist(), "y": y.tolist()} for x, y in laid_out]


def submit_run(
    settings: Settings,
    store: ArtifactStore,
    owner: str,
    circuit_id: str,
    weights: Any,
    batches: Any,
) -> Accepted:
    """Accept a training run: a step from ``weights`` on the first batch, then a step from
    its proven new weights on the next batch, and so on (one job per step, in order)."""
    db_url = settings.sqlalchemy_url()
    with session_scope(db_url) as session:
        ready_circuit(session, owner, circuit_id)
    meta = _training_record(store, circuit_id)
    run_args = store.read_record("circuits", circuit_id)["settings"]
    start = step_weights(step_graph(meta), weights)
    check_values(start, "starting", "weights", run_args)
    request = {
        "circuit_id": circuit_id,
        "weights": start.tolist(),
        "batches": _batches(meta, batches, run_args),
    }
    run_id = canonical_digest(request)
    if not store.exists("runs", run_id):
        record = {"id": run_id, "type": "training_run", "created_at": now_iso(), **request}
        store.save_record("runs", run_id, record)

    def body(session: Session) -> Accepted:
        fresh = TrainingRun(
            id=run_id,
            circuit_id=circuit_id,
            state="running",
            steps_total=len(request["batches"]),
            proof_ids=[],
            job_id="",
        )
        run, enqueue = runs.accept_run(session, fresh, owner, start_step)
        for proof_id in run.proof_ids:
            grants.grant(session, owner, "proof", proof_id)
        return run_summary(run), enqueue

    return with_retry(db_url, body)


def get_run(
    session: Session, store: ArtifactStore, owner: str, run_id: str, steps: bool = True
) -> dict[str, Any]:
    """A run's state, and the error if it failed; with ``steps``, also each proven step
    (proof id, commitments, loss proven and float, error against the float step) and the
    final weights once it succeeded. Without, nothing is read from the store: for polling."""
    run = grants.visible_row(session, owner, "run", TrainingRun, run_id)
    view, proof_ids = run_summary(run), list(run.proof_ids)
    failed = run.state == "failed"
    job = session.scalar(select(Job).where(Job.id == run.job_id)) if failed else None
    view["error"] = job.error if job is not None else None
    view["clients"] = run.clients
    if not steps:
        return view
    if run.clients:
        return {**view, **federated_view(store, run_id, proof_ids)}
    records = [store.read_record("steps", proof_id) for proof_id in proof_ids]
    view["scale"] = store.read_record("training", view["circuit_id"])["scale"]
    view["steps"] = [
        {"step": i, **{k: v for k, v in record.items() if k != "new_weights"}}
        for i, record in enumerate(records)
    ]
    done = view["state"] == "succeeded"
    view["final_weights"] = records[-1]["new_weights"] if done else None
    view["final_commitment"] = records[-1]["commitments"]["weights_out"] if done else None
    return view


def step_inputs(
    store: ArtifactStore, run_id: str, step: int, after: str | None
) -> tuple[str, Any, Any, Any]:
    """(circuit id, weights, x, y) of a run's step: the run's initial weights for the first
    step, else the new weights the proof ``after`` (the previous step) produced."""
    run = store.read_record("runs", run_id)
    previous = store.read_record("steps", after) if after else {"new_weights": run["weights"]}
    batch = run["batches"][step]
    return run["circuit_id"], previous["new_weights"], batch["x"], batch["y"]


def verify_steps(
    session: Session,
    store: ArtifactStore,
    owner: str,
    proof_ids: list[str],
    batches: list[Any] | None = None,
    initial_weights: str | None = None,
) -> dict[str, Any]:
    """``verify_chain`` over step proofs the key may see; ``batches`` (optional, one per
    step) are the batches each step should have been proven on."""
    if not proof_ids:
        raise InvalidInputError("give at least one step proof")
    for proof_id in proof_ids:
        if not grants.can_see(session, owner, "proof", proof_id):
            raise NotFoundError(f"no proof with id {proof_id!r}", id=proof_id)
    from prover.training.steps import batch_commitments, verify_chain

    expected = batch_commitments(store, proof_ids[0], batches) if batches else None
    return verify_chain(store, proof_ids, expected, initial_weights)


def submit_ledger(settings: Settings, owner: str, run_id: str) -> Accepted:
    """Accept putting a succeeded run on the chain's TrainingLedger (a ``ledger`` job on
    the chain queue; see ``put_on_ledger``); 409 while the run is not done. Committed in
    its own transaction, before the job is enqueued."""
    db_url = settings.sqlalchemy_url()
    with session_scope(db_url) as session:
        run = grants.visible_row(session, owner, "run", TrainingRun, run_id)
        if run.state != "succeeded":
            raise ConflictError(
                f"run {run_id} is {run.state}: only a run whose steps are all proven goes on "
                "the ledger",
                run_id=run_id,
                state=run.state,
            )
        job = jobs.new_job(session, "ledger", run_id, owner, {"proof_ids": list(run.proof_ids)})
        return {"job_id": job.id, "state": job.state}, [(job.id, job.kind)]


def put_on_ledger(
    store: ArtifactStore,
    chain: Chain,
    run_id: str,
    proof_ids: list[str],
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Start the run on the ledger under its own id (0x + run id) with its initial
    weights and batch schedule, and submit its step proofs (``ledger.record_run``)."""
    from prover.chain.ledger import record_run
    from prover.training.steps import batch_commitment, commitment

    run = store.read_record("runs", run_id)
    if record_type(run) == "federated_run":
        return put_federated_on_ledger(store, chain, run_id, proof_ids, progress)
    scale = store.read_record("training", run["circuit_id"])["scale"]
    batches = [
        batch_commitment(np.asarray(b["x"]), np.asarray(b["y"]), scale) for b in run["batches"]
    ]
    initial = commitment(run["weights"], scale)
    return record_run(
        chain, store, f"0x{run_id}", run["circuit_id"], initial, batches, proof_ids, progress
    )


def start_step(session: Session, run: TrainingRun, owner: str) -> tuple[str, str]:
    """Create the job of a run's next step (it starts from the last step's proof)."""
    after = run.proof_ids[-1] if run.proof_ids else None
    return runs.start_next(
        session, run, owner, "train_step", {"step": len(run.proof_ids), "after": after}
    )


def _step_made(run: TrainingRun, result: dict[str, Any]) -> tuple[list[MadeProof], str]:
    """A step job makes one proof: the step's, which the run records."""
    made = MadeProof(
        proof_id=result["proof_id"], circuit_id=run.circuit_id, input_digest=result["input_digest"]
    )
    return [made], made["proof_id"]


def advance_run(session: Session, job: Job, ok: bool) -> list[tuple[str, str]]:
    """The ending of a step job (``runs.advance``): its proof ready, the next step's job
    fed by it."""
    return runs.advance(session, job, ok, _step_made, start_step)
