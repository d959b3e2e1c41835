"""Accepting work: check a request fully, record it idempotently, say which jobs to enqueue.

Everything a client can get wrong is checked here, before any job exists: the model
(intake), the calibration data, the options, the input's shape. The same compile request
twice is one circuit and one job; the same (circuit, input) twice is one proof unless the
client asks for a fresh one.

Circuits and proofs are shared between keys (their ids are content digests), jobs are not:
a key asking for what another key already made gets a job of its own, so that no key
learns another's job ids or times.

Each submission commits in a transaction of its own (by database URL), not in the
caller's: its jobs must be committed before they are enqueued (a worker that claims a job
must find it), and an insert that lost a race with an identical request is retried.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from prover.config import Settings
from prover.errors import CapacityError, ConflictError, InvalidInputError, QuotaError
from prover.service import grants, jobs
from prover.service.capacity import pool_capacity
from prover.service.db import session_scope
from prover.service.grants import SubjectType
from prover.service.options import CompileRequest
from prover.service.tables import Circuit, Job, Proof
from prover.store import ArtifactStore

if TYPE_CHECKING:  # the compiler (ezkl, onnx) loads when a request is checked, not before
    from prover.circuits.plans import Plan

Accepted = tuple[dict[str, Any], list[tuple[str, str]]]  # (response, jobs to enqueue)
IN_FLIGHT = ("queued", "running")
QUOTA_RETRY_S = 10  # the wait a key at its jobs quota is told: a job takes seconds at least


def require_room(session: Session, owner: str, limit: int) -> None:
    """``QuotaError`` when the key already has ``limit`` jobs queued or running (0: no
    limit): checked before a request that may create jobs, so one key cannot fill the
    queues. A soft limit: concurrent requests may pass it by a few jobs."""
    if limit <= 0:
        return
    query = select(func.count()).where(Job.owner == owner, Job.state.in_(IN_FLIGHT))
    in_flight = session.scalar(query) or 0
    if in_flight >= limit:
        raise QuotaError(
            f"this key has {in_flight} jobs queued or running, its quota "
            f"(PROVER_MAX_JOBS_IN_FLIGHT={limit}); wait for some to end",
            retry_after_s=QUOTA_RETRY_S,
            in_flight=in_flight,
            limit=limit,
        )


def with_retry(db_url: str, body: Any, attempts: int = 2) -> Any:
    """Run ``body(session)`` in a transaction; again (``attempts`` runs in all) when a
    concurrent request inserted the same row first (the next run then finds it)."""
    for attempt in range(1, attempts + 1):
        try:
            with session_scope(db_url) as session:
                return body(session)
        except IntegrityError:
            if attempt == attempts:
                raise
    raise ValueError(f"with_retry needs at least one attempt; got {attempts}")


@dataclass(frozen=True)
class Making:
    """What a request makes: a circuit (compile job) or a proof (prove job)."""

    kind: str
    subject_id: str
    params: dict[str, Any]
    pending_state: str  # the row's state while a job makes it
    new_row: Callable[[str], Any]  # the new row, made by the job of this id
    ready_result: Callable[[], dict[str, Any]]  # a job's result when the row is ready


def _row_with_job(
    session: Session, owner: str, making: Making, row: Any
) -> tuple[Any, Job, list[tuple[str, str]]]:
    """The row of a request and this key's job for it; returns (row, job, jobs to enqueue).

    A new or failed row gets a new job that makes it. Otherwise the key's own job on the
    row is kept (the same request twice is one job); a key without one gets a job of its
    own, never another key's: one already succeeded when the row is ready, else one that
    makes it too (the store keeps one copy: whichever job comes second finds it made)."""
    if row is None or row.state == "failed":
        job = jobs.new_job(session, making.kind, making.subject_id, owner, making.params)
        if row is None:
            row = making.new_row(job.id)
            session.add(row)
        else:
            row.state, row.job_id = making.pending_state, job.id
        session.flush()
        return row, job, [(job.id, job.kind)]
    own = grants.own_job(session, owner, making.kind, row.id, row.job_id)
    if own is not None and own.state != "failed":
        return row, own, []
    job = jobs.new_job(session, making.kind, making.subject_id, owner, making.params)
    if row.state != "ready":
        return row, job, [(job.id, job.kind)]
    job.state, job.phase, job.progress = "succeeded", "done", 1.0
    job.result, job.finished_at = making.ready_result(), job.created_at
    return row, job, []


def submit_compile(
    settings: Settings,
    store: ArtifactStore,
    owner: str,
    model_path: Path,
    calibration: Any | None,
    requested: CompileRequest,
) -> Accepted:
    """Accept a model for compilation; returns the response and the jobs to enqueue.
    ``settings`` give the intake limits and the default tolerance."""
    from prover.circuits.data import to_ezkl_input
    from prover.circuits.plans import compile_plan

    options = requested.core_options(settings)
    memory = pool_capacity(settings) if requested.fit_workers else None
    with compile_plan(model_path, calibration, options, settings, requested, memory) as plan:
        params = {
            "calibration": to_ezkl_input(plan.samples) if plan.source == "user" else None,
            "options": requested.settled(settings),
            "memory": memory,  # the worker memory split to: the worker plans the same cuts
        }
        return accept_compile(settings, store, owner, plan, params)


def accept_compile(
    settings: Settings,
    store: ArtifactStore,
    owner: str,
    plan: Plan,
    params: dict[str, Any],
) -> Accepted:
    """Record a checked compile plan: its model, circuit row and compile job (unless the
    circuit exists and has not failed). ``params`` tell the worker how to build it. The
    model's file name is this key's own (on its grants), not the shared rows'."""
    db_url = settings.sqlalchemy_url()
    from prover.circuits.compiler import store_model
    from prover.circuits.segments import SegmentedPlan

    store_model(store, plan.info)
    name = plan.info.path.name
    params = {"model_id": plan.info.model_id, "model_name": name, **params}

    def make_circuit(job_id: str) -> Circuit:
        return Circuit(
            id=plan.circuit_id,
            model_id=plan.info.model_id,
            model_name=name,
            state="compiling",
            job_id=job_id,
        )

    def ready_result() -> dict[str, Any]:
        record = store.read_record("circuits", plan.circuit_id)
        return {"circuit_id": plan.circuit_id, "logrows": record["logrows"], "cached": True}

    making = Making("compile", plan.circuit_id, params, "compiling", make_circuit, ready_result)

    def body(session: Session) -> Accepted:
        row = session.get(Circuit, plan.circuit_id)
        circuit, job, enqueue = _row_with_job(session, owner, making, row)
        grants.grant(session, owner, "model", plan.info.model_id, name)
        grants.grant(session, owner, "circuit", circuit.id, name)
        response = {
            "model_id": plan.info.model_id,
            "circuit_id": circuit.id,
            "job_id": job.id,
            "state": circuit.state,
        }
        if isinstance(plan, SegmentedPlan) and plan.note is not None:
            response["note"] = plan.note
        return response, enqueue

    return with_retry(db_url, body)


def _not_ready(session: Session, owner: str, what: SubjectType, row: Any) -> ConflictError:
    """The 409 of a circuit or proof not ready, naming this key's job on it (if any)."""
    kind = "compile" if what == "circuit" else "prove"
    job = grants.own_job(session, owner, kind, row.id, row.job_id)
    detail = ""
    if job is not None:
        why = f" failed: {job.error.get('message')}" if row.state == "failed" and job.error else ""
        detail = f" (job {job.id}{why})"
    advice = "submit it again" if row.state == "failed" else "wait for the job"
    return ConflictError(
        f"{what} {row.id} is {row.state}, not ready{detail}; {advice}",
        **{f"{what}_id": row.id},
        job_id=job.id if job else None,
        state=row.state,
    )


def ready_circuit(session: Session, owner: str, circuit_id: str) -> Circuit:
    """A circuit the key may see and that has compiled; 404 or 409 otherwise."""
    circuit = grants.visible_row(session, owner, "circuit", Circuit, circuit_id)
    if circuit.state != "ready":
        raise _not_ready(session, owner, "circuit", circuit)
    return circuit


def proof_memory(store: ArtifactStore, circuit: dict[str, Any]) -> int | None:
    """The estimated peak memory of one proof job on a circuit: for a circuit in
    segments, its largest segment's (each segment is its own job); None if unknown."""
    records = [store.read_record("circuits", s["circuit_id"]) for s in circuit.get("segments", [])]
    needs = [(r.get("estimate") or {}).get("peak_memory_bytes") for r in records or [circuit]]
    known = [int(n) for n in needs if n]
    return max(known) if known else None


def check_capacity(store: ArtifactStore, circuit: dict[str, Any], capacity_bytes: int) -> None:
    """``CapacityError`` when a proof job on the circuit needs more memory than a worker
    may give it: refused now rather than failing on a worker that runs out."""
    need = proof_memory(store, circuit)
    if need is not None and need > capacity_bytes:
        raise CapacityError(
            f"a proof of circuit {circuit['id']} needs about {need / 2**30:.2f} GiB, more "
            f"than the largest worker has ({capacity_bytes / 2**30:.2f} GiB, "
            "PROVER_WORKER_MEMORY_BYTES); "
            "compile the model in segments (segments or max_logrows) to fit",
            need_bytes=need,
            capacity_bytes=capacity_bytes,
        )


def request_proof(
    settings: Settings,
    store: ArtifactStore,
    owner: str,
    circuit_id: str,
    input_obj: Any,
    *,
    fresh: bool = False,
    capacity_bytes: int | None = None,
    items: list[Any] | None = None,
) -> Accepted:
    """Accept a proof request for a compiled circuit; returns the response and the jobs.
    With ``capacity_bytes``, a proof that needs more memory than that is refused. A batch
    circuit takes its N inputs as ``items`` (each as a single input is given)."""
    db_url = settings.sqlalchemy_url()
    with session_scope(db_url) as session:
        ready_circuit(session, owner, circuit_id)
    from prover.circuits.data import sample_digest_material
    from prover.circuits.layouts import batch_input, is_batch_circuit, stored_layout
    from prover.proving.plans import plan_proof

    circuit = store.read_record("circuits", circuit_id)
    if items is not None:
        input_obj = batch_input(stored_layout(store, circuit), items)
    elif is_batch_circuit(store, circuit):
        n = stored_layout(store, circuit).n
        raise InvalidInputError(
            f"circuit {circuit_id} proves a batch of {n}: send items ({n} inputs), or one "
            "input with batching: true to be proven with this key's other requests",
            circuit_id=circuit_id,
        )
    plan = plan_proof(store, circuit_id, input_obj, fresh)
    if capacity_bytes is not None:
        check_capacity(store, plan.circuit, capacity_bytes)
    params = {
        "circuit_id": circuit_id,
        "input": sample_digest_material(plan.sample),
        "input_digest": plan.input_digest,
    }

    def make_proof(job_id: str) -> Proof:
        return Proof(
            id=plan.proof_id,
            circuit_id=circuit_id,
            input_digest=plan.input_digest,
            state="proving",
            job_id=job_id,
        )

    def ready_result() -> dict[str, Any]:
        record = store.read_record("proofs", plan.proof_id)
        keep = ("outputs", "timings")
        return {"proof_id": plan.proof_id, **{k: record[k] for k in keep}, "cached": True}

    making = Making("prove", plan.proof_id, params, "proving", make_proof, ready_result)

    def body(session: Session) -> Accepted:
        row = session.get(Proof, plan.proof_id)
        proof, job, enqueue = _row_with_job(session, owner, making, row)
        grants.grant(session, owner, "proof", proof.id)
        response = {"proof_id": proof.id, "job_id": job.id, "state": proof.state}
        return response, enqueue

    return with_retry(db_url, body)


def submit_chain_job(
    settings: Settings,
    store: ArtifactStore,
    owner: str,
    kind: Literal["deploy", "submit"],
    subject_id: str,
    params: dict[str, Any],
) -> Accepted:
    """A deploy (subject: a ready circuit) or submit (subject: a ready proof) job."""
    db_url = settings.sqlalchemy_url()
    table: type[Circuit] | type[Proof]
    what: SubjectType
    table, what = (Circuit, "circuit") if kind == "deploy" else (Proof, "proof")
    with session_scope(db_url) as session:
        row = grants.visible_row(session, owner, what, table, subject_id)
        if row.state != "ready":
            raise _not_ready(session, owner, what, row)
        if params.get("commit_reveal"):
            from prover.chain.acceptance import check_commit_reveal

            check_commit_reveal(store, row.id)
        job = jobs.new_job(session, kind, subject_id, owner, params)
        return {"job_id": job.id, "state": job.state}, [(job.id, kind)]
