"""The job state machine, ``queued → running → succeeded | failed``, with worker leases.

Delivery is at least once (a task is re-delivered when its worker dies); recording is
exactly once: a worker must *claim* a job, which gives it a lease token, and only the
holder of an unexpired lease may report progress or record the outcome. A job whose
worker died is claimed again once its lease has lapsed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from prover.errors import NotFoundError
from prover.service.db import session_scope
from prover.service.schema import Circuit, Grant, Job, Proof, TrainingRun, utcnow

JobKind = Literal["compile", "prove", "deploy", "submit", "train_step", "ledger"]
TERMINAL = ("succeeded", "failed")
# The row whose state follows a job's outcome, and the state it takes on success/failure.
_SUBJECTS: dict[str, tuple[type[Circuit] | type[Proof], str]] = {
    "compile": (Circuit, "ready"),
    "prove": (Proof, "ready"),
}


# Sending a job back to the queue (after a transient error, or when its worker died).
_REQUEUED = {"state": "queued", "phase": "queued", "lease_token": None, "lease_expires_at": None}


def _utc(when: datetime) -> datetime:
    """An aware UTC time (SQLite hands back naive datetimes; every stored time is UTC)."""
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _aware(when: datetime | None) -> str | None:
    return None if when is None else _utc(when).isoformat()


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
        "worker": job.worker,
        "timings": job.timings,
        "created_at": _aware(job.created_at),
        "started_at": _aware(job.started_at),
        "finished_at": _aware(job.finished_at),
    }


def new_job(
    session: Session, kind: JobKind, subject_id: str, owner: str, params: dict[str, Any]
) -> Job:
    job = Job(
        id=uuid.uuid4().hex,
        kind=kind,
        subject_id=subject_id,
        owner=owner,
        state="queued",
        phase="queued",
        progress=0.0,
        params=params,
        timings={},
        attempts=0,
    )
    session.add(job)
    session.flush()
    grant(session, owner, "job", job.id)
    return job


def grant(session: Session, key_id: str, kind: str, subject_id: str) -> None:
    """Let a key see a row (idempotent)."""
    if not can_see(session, key_id, kind, subject_id):
        session.add(Grant(key_id=key_id, kind=kind, subject_id=subject_id))
        session.flush()


def can_see(session: Session, key_id: str, kind: str, subject_id: str) -> bool:
    """Whether a key was granted the ``kind`` row ``subject_id``."""
    return (
        session.scalar(
            select(Grant.seq).where(
                Grant.key_id == key_id, Grant.kind == kind, Grant.subject_id == subject_id
            )
        )
        is not None
    )


def get_job(db_url: str, job_id: str, key_id: str | None = None) -> dict[str, Any]:
    """A job's public form; with ``key_id``, only if that key may see it."""
    with session_scope(db_url) as session:
        job = session.scalar(select(Job).where(Job.id == job_id))
        if job is None or (key_id is not None and not can_see(session, key_id, "job", job_id)):
            raise NotFoundError(f"no job with id {job_id!r}", id=job_id)
        return job_view(job)


@dataclass(frozen=True)
class Claim:
    """The outcome of a claim: ``claimed`` (with a token), ``done``, ``busy`` or ``missing``."""

    status: Literal["claimed", "done", "busy", "missing"]
    token: str | None = None
    kind: str | None = None
    params: dict[str, Any] | None = None
    subject_id: str | None = None
    attempts: int = 0
    queued_s: float = 0.0
    retry_in_s: float = 0.0


def claim(db_url: str, job_id: str, worker: str, lease_s: float, max_attempts: int) -> Claim:
    """Take a job that is queued, or running under a lapsed lease (its worker died)."""
    now = utcnow()
    token = uuid.uuid4().hex
    with session_scope(db_url) as session:
        taken = session.execute(
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
            )
        ).rowcount
        job = session.scalar(select(Job).where(Job.id == job_id))
        if job is None:
            return Claim("missing")
        if not taken:
            if job.state in TERMINAL:
                return Claim("done")
            expires = job.lease_expires_at
            wait = (_utc(expires) - now).total_seconds() if expires else lease_s
            return Claim("busy", retry_in_s=max(1.0, wait + 1.0))
        claimed = Claim(
            "claimed",
            token,
            job.kind,
            dict(job.params),
            job.subject_id,
            job.attempts,
            queued_s=max(0.0, (now - _utc(job.created_at)).total_seconds()),
        )
    if claimed.attempts > max_attempts:
        fail(
            db_url,
            job_id,
            token,
            {
                "code": "worker_lost",
                "message": f"the job was started {max_attempts} times and its worker was lost "
                "each time (killed, out of memory, or over the time limit)",
            },
        )
        return Claim("done")
    return claimed


def _held(job_id: str, token: str) -> Any:
    return (Job.id == job_id) & (Job.lease_token == token) & (Job.state == "running")


def renew(db_url: str, job_id: str, token: str, lease_s: float) -> bool:
    """Extend a lease; False when the lease was lost to another worker."""
    with session_scope(db_url) as session:
        return bool(
            session.execute(
                update(Job)
                .where(_held(job_id, token))
                .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
            ).rowcount
        )


def report(
    db_url: str, job_id: str, token: str, phase: str, progress: float, timings: dict[str, float]
) -> bool:
    """Record progress of a held job."""
    with session_scope(db_url) as session:
        return bool(
            session.execute(
                update(Job)
                .where(_held(job_id, token))
                .values(phase=phase, progress=progress, timings=timings)
            ).rowcount
        )


def release(db_url: str, job_id: str, token: str) -> bool:
    """Give a held job back to the queue (after a transient error), keeping its attempts."""
    with session_scope(db_url) as session:
        return bool(
            session.execute(update(Job).where(_held(job_id, token)).values(**_REQUEUED)).rowcount
        )


@dataclass(frozen=True)
class Settled:
    """A recorded outcome, with the jobs it created (enqueue them after the commit)."""

    follow_ups: list[tuple[str, str]]


def _settle(
    db_url: str, job_id: str, token: str, values: dict[str, Any], subject_ok: bool
) -> Settled | None:
    with session_scope(db_url) as session:
        job = session.scalar(select(Job).where(_held(job_id, token)).with_for_update())
        if job is None:
            return None
        for name, value in values.items():
            setattr(job, name, value)
        job.finished_at = utcnow()
        job.lease_token = None
        return Settled(_settle_subject(session, job, subject_ok))


def _settle_subject(session: Session, job: Job, ok: bool) -> list[tuple[str, str]]:
    """The circuit or proof a compile or prove job makes: ready, or failed; the run a
    training step belongs to: one step further (with the next step's job), or failed."""
    if job.kind == "train_step":
        return _advance_run(session, job, ok)
    if job.kind in _SUBJECTS:
        table, ready = _SUBJECTS[job.kind]
        row = session.get(table, job.subject_id)
        if row is not None and row.job_id == job.id:
            row.state = ready if ok else "failed"
    return []


def _advance_run(session: Session, job: Job, ok: bool) -> list[tuple[str, str]]:
    """Record a step job's end on its run: the step's proof becomes a ready proof row that
    every key of the run may see, and the next step gets its job (fed this step's proof)."""
    run = session.get(TrainingRun, job.subject_id)
    if run is None or run.job_id != job.id:
        return []
    if not ok:
        run.state, run.finished_at = "failed", utcnow()
        return []
    assert job.result is not None
    proof_id = job.result["proof_id"]
    row = session.get(Proof, proof_id)
    if row is not None and row.state == "failed":  # an earlier request for the same input
        row.state, row.job_id = "ready", job.id
    elif row is None:
        session.add(
            Proof(
                id=proof_id,
                circuit_id=run.circuit_id,
                input_digest=job.result["input_digest"],
                state="ready",
                job_id=job.id,
            )
        )
        session.flush()
    for key_id in {job.owner, *_keys_of_run(session, run.id)}:
        grant(session, key_id, "proof", proof_id)
    run.proof_ids = [*run.proof_ids, proof_id]
    if len(run.proof_ids) == run.steps_total:
        run.state, run.finished_at = "succeeded", utcnow()
        return []
    return [start_step(session, run, job.owner)]


def _keys_of_run(session: Session, run_id: str) -> set[str]:
    query = select(Grant.key_id).where(Grant.kind == "run", Grant.subject_id == run_id)
    return set(session.scalars(query))


def start_step(session: Session, run: TrainingRun, owner: str) -> tuple[str, str]:
    """Create the job of a run's next step (it starts from the last step's proof)."""
    step = len(run.proof_ids)
    after = run.proof_ids[-1] if run.proof_ids else None
    job = new_job(session, "train_step", run.id, owner, {"step": step, "after": after})
    for key_id in _keys_of_run(session, run.id):
        grant(session, key_id, "job", job.id)
    run.job_id, run.state, run.finished_at = job.id, "running", None
    return job.id, job.kind


def succeed(
    db_url: str, job_id: str, token: str, result: dict[str, Any], timings: dict[str, float]
) -> Settled | None:
    """Record success (only the lease holder can); None if the lease was lost."""
    values = {"state": "succeeded", "phase": "done", "progress": 1.0, "result": result}
    return _settle(db_url, job_id, token, {**values, "timings": timings}, True)


def fail(
    db_url: str,
    job_id: str,
    token: str,
    error: dict[str, Any],
    timings: dict[str, float] | None = None,
) -> Settled | None:
    """Record failure with a reason (only the lease holder can); None if the lease was lost."""
    values: dict[str, Any] = {"state": "failed", "error": error}
    if timings is not None:
        values["timings"] = timings
    return _settle(db_url, job_id, token, values, False)


def abandon(db_url: str, job_id: str, error: dict[str, Any]) -> None:
    """Fail a job that never reached the queue (the broker refused it)."""
    with session_scope(db_url) as session:
        job = session.scalar(select(Job).where(Job.id == job_id, Job.state == "queued"))
        if job is None:
            return
        job.state, job.error, job.finished_at = "failed", error, utcnow()
        _settle_subject(session, job, False)


def waiting(db_url: str, older_than_s: float) -> list[tuple[str, str]]:
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
            moved = session.execute(
                update(Job)
                .where(_held(job_id, token), Job.lease_expires_at < now)
                .values(**_REQUEUED)
            ).rowcount
            if moved:
                requeued.append((job_id, kind))
    return requeued
