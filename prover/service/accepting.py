"""What every accepted request shares: check fully, record idempotently, say which jobs
to enqueue (``Accepted``), within the key's jobs quota.

Everything a client can get wrong is checked before any job exists. Circuits and proofs
are shared between keys (their ids are content digests), jobs are not: a key asking for
what another key already made gets a job of its own (``row_with_job``), so that no key
learns another's job ids or times.

Each acceptance commits in a transaction of its own (by database URL), not in the
caller's: its jobs must be committed before they are enqueued (a worker that claims a job
must find it), and an insert that lost a race with an identical request is retried
(``with_retry``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from prover.errors import ConflictError, QuotaError
from prover.service import grants, jobs
from prover.service.db import session_scope
from prover.service.grants import SubjectType
from prover.service.tables import Circuit, Job

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


def row_with_job(
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


def not_ready(session: Session, owner: str, what: SubjectType, row: Any) -> ConflictError:
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
        raise not_ready(session, owner, "circuit", circuit)
    return circuit
