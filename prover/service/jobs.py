"""The job state machine, ``queued → running → succeeded | failed``, with worker leases.

Delivery is at least once (a task is re-delivered when its worker dies); recording is
exactly once: a worker must *claim* a job, which gives it a lease token, and only the
holder of an unexpired lease may report progress or record the outcome. A job whose
worker died is claimed again once its lease has lapsed.

``attempts`` counts starts that may have killed their worker (a start that ended in a
transient fault is given back with ``release`` and does not count); ``retries`` counts
those transient give-backs, which a deadline bounds instead (``execution``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Literal, TypedDict, TypeVar, cast

from sqlalchemy import CursorResult, Update, or_, select, update
from sqlalchemy.orm import Session

from prover.errors import NotFoundError
from prover.service import grants
from prover.service.db import session_scope
from prover.service.events import add_event
from prover.service.tables import Circuit, Job, Proof, as_utc, iso_utc, utcnow

TERMINAL = ("succeeded", "failed")
Made = TypeVar("Made", Circuit, Proof)  # a row a job makes
# What a job's end does to the rows it is about, in the transaction that records it;
# returns the (job id, kind) of jobs it created, to enqueue after the commit.
OnEnd = Callable[[Session, Job, bool], list[tuple[str, str]]]


# Sending a job back to the queue (after a transient error, or when its worker died).
_REQUEUED = {"state": "queued", "phase": "queued", "lease_token": None, "lease_expires_at": None}


def job_view(job: Job) -> dict[str, Any]:
    """The public form of a job."""
    return {
        "job_id": job.id,
        "kind": job.kind,
        "subject_id": job.subject_id,
        "state": job.state,
        "phase": job.phase,
        "progress": round(job.progress, 4),
        "error": job.error,
        "result": job.result,
        "attempts": job.attempts,
        "retries": job.retries,
        "worker": job.worker,
        "parent_id": job.parent_id,
        "timings": job.timings,
        "created_at": iso_utc(job.created_at),
        "started_at": iso_utc(job.started_at),
        "finished_at": iso_utc(job.finished_at),
    }


def announce(session: Session, job: Job, type_: str) -> None:
    """Record a change of the job, in its transaction, as an event of its owner."""
    add_event(session, job.owner, type_, job.id, job_view(job))


def _announce_id(session: Session, job_id: str, type_: str) -> None:
    """``announce`` a job changed by an UPDATE statement (read back in its transaction)."""
    job = session.scalar(
        select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
    )
    if job is not None:
        announce(session, job, type_)


def new_job(
    session: Session,
    kind: str,
    subject_id: str,
    owner: str,
    params: dict[str, Any],
    parent_id: str | None = None,
) -> Job:
    job = Job(
        id=uuid.uuid4().hex,
        parent_id=parent_id,
        kind=kind,
        subject_id=subject_id,
        owner=owner,
        state="queued",
        phase="queued",
        progress=0.0,
        params=params,
        timings={},
        attempts=0,
        retries=0,
    )
    session.add(job)
    session.flush()
    grants.grant(session, owner, "job", job.id)
    announce(session, job, "job.queued")
    return job


def get_job(db_url: str, job_id: str, key_id: str | None = None) -> dict[str, Any]:
    """A job's public form; with ``key_id``, only if that key may see it."""
    with session_scope(db_url) as session:
        job = session.scalar(select(Job).where(Job.id == job_id))
        if job is None or (
            key_id is not None and not grants.can_see(session, key_id, "job", job_id)
        ):
            raise NotFoundError(f"no job with id {job_id!r}", id=job_id)
        return job_view(job)


@dataclass(frozen=True)
class Claim:
    """The outcome of a claim: ``claimed`` (with a token), ``done``, ``busy``, ``missing``, or
    ``exhausted`` (claimed, but started too often: the holder records it as lost)."""

    status: Literal["claimed", "done", "busy", "missing", "exhausted"]
    token: str | None = None
    job_id: str | None = None
    kind: str | None = None
    params: dict[str, Any] | None = None
    subject_id: str | None = None
    attempts: int = 0
    queued_s: float = 0.0
    retry_in_s: float = 0.0
    retries: int = 0  # transient give-backs so far
    failing_since: str | None = None  # when the current run of transient faults began
    owner: str | None = None


def claim(db_url: str, job_id: str, worker: str, lease_s: float, max_attempts: int) -> Claim:
    """Take a job that is queued, or running under a lapsed lease (its worker died)."""
    now = utcnow()
    token = uuid.uuid4().hex
    with session_scope(db_url) as session:
        taken = updated(
            session,
            update(Job)
            .where(
                Job.id == job_id,
                or_(
                    Job.state == "queued",
                    (Job.state == "running") & (Job.lease_expires_at < now),
                ),
            )
            .values(
                state="running",
                lease_token=token,
                lease_expires_at=now + timedelta(seconds=lease_s),
                attempts=Job.attempts + 1,
                worker=worker,
                started_at=now,
                phase="starting",
            ),
        )
        job = session.scalar(select(Job).where(Job.id == job_id))
        if job is None:
            return Claim("missing")
        if not taken:
            if job.state in TERMINAL:
                return Claim("done")
            expires = job.lease_expires_at
            wait = (as_utc(expires) - now).total_seconds() if expires else lease_s
            return Claim("busy", retry_in_s=max(1.0, wait + 1.0))
        claimed = Claim(
            "claimed",
            token,
            job.id,
            job.kind,
            dict(job.params),
            job.subject_id,
            job.attempts,
            queued_s=max(0.0, (now - as_utc(job.created_at)).total_seconds()),
            retries=job.retries,
            failing_since=(job.error or {}).get("failing_since"),
            owner=job.owner,
        )
        announce(session, job, "job.running")
    if claimed.attempts > max_attempts:
        return replace(claimed, status="exhausted")
    return claimed


def updated(session: Session, statement: Update) -> bool:
    """Run an UPDATE; whether it changed a row (the compare-and-set every lease step is)."""
    return bool(cast(CursorResult[Any], session.execute(statement)).rowcount)


def _held(job_id: str, token: str | None) -> Any:
    return (Job.id == job_id) & (Job.lease_token == token) & (Job.state == "running")


def renew(db_url: str, job_id: str, token: str, lease_s: float) -> bool:
    """Extend a lease; False when the lease was lost to another worker."""
    with session_scope(db_url) as session:
        return updated(
            session,
            update(Job)
            .where(_held(job_id, token))
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s)),
        )


def report(
    db_url: str,
    job_id: str,
    token: str,
    phase: str,
    progress: float,
    timings: dict[str, float],
    new_phase: bool = False,
) -> bool:
    """Record progress of a held job (a ``job.progress`` event when a phase begins)."""
    with session_scope(db_url) as session:
        held = updated(
            session,
            update(Job)
            .where(_held(job_id, token))
            .values(phase=phase, progress=progress, timings=timings),
        )
        if held and new_phase:
            _announce_id(session, job_id, "job.progress")
        return held


def release(db_url: str, job_id: str, token: str, error: dict[str, Any] | None = None) -> bool:
    """Give a held job back to the queue after a transient fault: the start is taken back
    from ``attempts`` (the worker was not lost, so it must not bring the job nearer to
    ``worker_lost``) and counted in ``retries``; ``error`` says why the job waits."""
    values: dict[str, Any] = {
        **_REQUEUED,
        "attempts": Job.attempts - 1,
        "retries": Job.retries + 1,
        "error": error,
    }
    return _requeue(db_url, job_id, token, values)


def _requeue(db_url: str, job_id: str, token: str, values: dict[str, Any]) -> bool:
    """Send a held job back to the queue with ``values``; whether it was still held."""
    with session_scope(db_url) as session:
        held = updated(session, update(Job).where(_held(job_id, token)).values(**values))
        if held:
            _announce_id(session, job_id, "job.queued")
        return held


@dataclass(frozen=True)
class Settled:
    """A recorded outcome, with the jobs it created (enqueue them after the commit)."""

    follow_ups: list[tuple[str, str]]


def _settle(
    db_url: str, job_id: str, token: str, values: dict[str, Any], on_end: OnEnd, ok: bool
) -> Settled | None:
    with session_scope(db_url) as session:
        job = session.scalar(select(Job).where(_held(job_id, token)).with_for_update())
        if job is None:
            return None
        for name, value in values.items():
            setattr(job, name, value)
        job.finished_at = utcnow()
        job.lease_token = None
        announce(session, job, f"job.{job.state}")
        return Settled(on_end(session, job, ok))


def subject_follows(table: type[Made]) -> OnEnd:
    """The ending of a job that makes one row (a compile job's circuit, a prove job's
    proof). Several keys' jobs may make the same row: any of them succeeding makes it
    ready; a failure fails it only while that job is the row's own and nothing else made
    it meanwhile."""

    def follow(session: Session, job: Job, ok: bool) -> list[tuple[str, str]]:
        row = session.get(table, job.subject_id)
        if row is None:
            return []
        if ok:
            row.state = "ready"
        elif row.job_id == job.id and row.state != "ready":
            row.state = "failed"
        return []

    return follow


class MadeProof(TypedDict):
    """A proof a job made besides its subject (a run's step, a batch proof)."""

    proof_id: str
    circuit_id: str
    input_digest: str


def ready_proof(session: Session, made: MadeProof, job_id: str, keys: Iterable[str]) -> None:
    """The proof row of ``made``, ready and made by ``job_id`` (added, or one that was
    pending or failed from an earlier request for the same input), seen by ``keys``."""
    row = session.get(Proof, made["proof_id"])
    if row is None:
        fields = {"circuit_id": made["circuit_id"], "input_digest": made["input_digest"]}
        session.add(Proof(id=made["proof_id"], state="ready", job_id=job_id, **fields))
        session.flush()
    elif row.state != "ready":
        row.state, row.job_id = "ready", job_id
    for key_id in keys:
        grants.grant(session, key_id, "proof", made["proof_id"])


def nothing_follows(_session: Session, _job: Job, _ok: bool) -> list[tuple[str, str]]:
    """The ending of a job whose result is all there is (the chain jobs)."""
    return []


def succeed(
    db_url: str,
    job_id: str,
    token: str,
    result: dict[str, Any],
    timings: dict[str, float],
    on_end: OnEnd,
) -> Settled | None:
    """Record success (only the lease holder can); None if the lease was lost."""
    values = {"state": "succeeded", "phase": "done", "progress": 1.0, "result": result}
    values["error"] = None  # a transient fault it waited through is over
    return _settle(db_url, job_id, token, {**values, "timings": timings}, on_end, True)


def fail(
    db_url: str,
    job_id: str,
    token: str,
    error: dict[str, Any],
    on_end: OnEnd,
    timings: dict[str, float] | None = None,
) -> Settled | None:
    """Record failure with a reason (only the lease holder can); None if the lease was lost."""
    values: dict[str, Any] = {"state": "failed", "error": error}
    if timings is not None:
        values["timings"] = timings
    return _settle(db_url, job_id, token, values, on_end, False)


def abandon(db_url: str, job_id: str, error: dict[str, Any], on_end: OnEnd) -> None:
    """Fail a job that never reached the queue (the broker refused it)."""
    with session_scope(db_url) as session:
        job = session.scalar(select(Job).where(Job.id == job_id, Job.state == "queued"))
        if job is None:
            return
        job.state, job.error, job.finished_at = "failed", error, utcnow()
        announce(session, job, "job.failed")
        on_end(session, job, False)


def queued_longer_than(db_url: str, older_than_s: float) -> list[tuple[str, str]]:
    """(job id, kind) of jobs queued for longer than ``older_than_s``."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    with session_scope(db_url) as session:
        rows = session.execute(
            select(Job.id, Job.kind).where(Job.state == "queued", Job.created_at < cutoff)
        ).all()
        return [(r[0], r[1]) for r in rows]


def requeue_lapsed(db_url: str) -> list[tuple[str, str]]:
    """Put running jobs whose lease lapsed (their worker died) back in the queued state;
    returns (job id, kind) of each, for the caller to enqueue once more. Atomic per job, so
    of several sweepers only one re-enqueues a given job."""
    now = utcnow()
    requeued = []
    with session_scope(db_url) as session:
        lapsed = session.execute(
            select(Job.id, Job.kind, Job.lease_token).where(
                Job.state == "running", Job.lease_expires_at < now
            )
        ).all()
        for job_id, kind, token in lapsed:
            moved = updated(
                session,
                update(Job)
                .where(_held(job_id, token), Job.lease_expires_at < now)
                .values(**_REQUEUED),
            )
            if moved:
                _announce_id(session, job_id, "job.queued")
                requeued.append((job_id, kind))
    return requeued


class Waiting(Exception):
    """Raised by a runner whose job cannot go on yet (a parent while its children work, a
    batch while its window is open): the job goes back to the queue (``postpone``) without
    counting an attempt, showing ``phase`` and ``progress``. A child's end wakes a parent
    (``wake_parent``); ``retry_in_s`` is when to look again regardless (None: the
    configured child poll). ``follow_ups`` are children it just spawned."""

    def __init__(
        self,
        phase: str,
        progress: float,
        follow_ups: list[tuple[str, str]] | None = None,
        retry_in_s: float | None = None,
    ) -> None:
        super().__init__(phase)
        self.phase, self.progress, self.follow_ups = phase, progress, follow_ups or []
        self.retry_in_s = retry_in_s


def spawn(
    db_url: str, parent: Claim, kind: str, params: list[dict[str, Any]]
) -> list[tuple[str, str]]:
    """Children of a held parent job, one per params, on the parent's subject; (id, kind)
    of each, to enqueue. Nothing when the lease was lost (the new holder spawns)."""
    assert parent.job_id and parent.subject_id is not None and parent.owner is not None
    owner = parent.owner
    with session_scope(db_url) as session:
        holder = session.scalar(select(Job).where(_held(parent.job_id, parent.token)))
        if holder is None:
            return []
        made = [
            new_job(session, kind, parent.subject_id, owner, p, parent_id=parent.job_id)
            for p in params
        ]
        return [(job.id, job.kind) for job in made]


def children(db_url: str, parent_id: str) -> list[dict[str, Any]]:
    """A job's children, in the order they were spawned: each one's public form and
    params."""
    with session_scope(db_url) as session:
        rows = session.scalars(select(Job).where(Job.parent_id == parent_id).order_by(Job.seq))
        return [{**job_view(job), "params": dict(job.params)} for job in rows]


def postpone(db_url: str, job_id: str, token: str, phase: str, progress: float) -> bool:
    """Send a held parent job back to the queue while its children work: the start is not
    an attempt (no worker was lost) nor a retry (nothing failed)."""
    values = {
        **_REQUEUED,
        "phase": phase,
        "progress": min(progress, 0.99),
        "attempts": Job.attempts - 1,
    }
    return _requeue(db_url, job_id, token, values)


def wake_parent(session: Session, job: Job, _ok: bool) -> list[tuple[str, str]]:
    """The ending of a child job: its parent, if waiting in the queue, runs again now."""
    if job.parent_id is None:
        return []
    parent = session.scalar(select(Job).where(Job.id == job.parent_id, Job.state == "queued"))
    return [] if parent is None else [(parent.id, parent.kind)]
