"""Running one job on a worker: claim it, keep its lease, do the core work, record it.

Called by the Celery task with a job id; everything here works on the database and the
artifact store only, so it can be driven directly from Python too.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from prover.config import Settings
from prover.errors import ProverError, is_transient, panic_error, transient_code
from prover.metrics import JOB_FAILURES, JOB_SECONDS, PHASE_SECONDS
from prover.service import jobs
from prover.service.kinds import JobKind, job_kind
from prover.service.lease import LeaseKeeper
from prover.service.tables import utcnow
from prover.store import ArtifactStore

log = logging.getLogger("prover.worker")


@dataclass(frozen=True)
class Outcome:
    """What the queue should do with the message: nothing more, or deliver it again later."""

    state: str
    retry_in_s: float | None = None
    follow_ups: list[tuple[str, str]] = field(default_factory=list)  # (job id, kind) to enqueue


class Tracker:
    """Phase timings and throttled progress reports of one held job."""

    def __init__(self, db_url: str, job_id: str, token: str, kind: str) -> None:
        self.db, self.job_id, self.token, self.kind = db_url, job_id, token, kind
        self.timings: dict[str, float] = {}
        self.phase, self.phase_started, self.last_report = "starting", time.monotonic(), 0.0

    def close_phase(self) -> None:
        elapsed = time.monotonic() - self.phase_started
        self.timings[self.phase] = round(self.timings.get(self.phase, 0.0) + elapsed, 4)
        PHASE_SECONDS.labels(self.kind, self.phase).observe(elapsed)
        self.phase_started = time.monotonic()

    def __call__(self, phase: str, fraction: float) -> None:
        changed = phase != self.phase
        if changed:
            self.close_phase()
            self.phase = phase
        now = time.monotonic()
        if changed or now - self.last_report > 0.5:
            self.last_report = now
            jobs.report(
                self.db, self.job_id, self.token, phase, min(fraction, 0.99), self.timings, changed
            )


@lru_cache
def lease_keeper(db_url: str, lease_s: float) -> LeaseKeeper:
    """This process's lease helper."""
    return LeaseKeeper(db_url, lease_s)


def run_job(job_id: str, worker: str, settings: Settings) -> Outcome:
    """Claim and run a job. Safe to call for a job that is done or held by another worker."""
    db = settings.sqlalchemy_url()
    claim = jobs.claim(db, job_id, worker, settings.job_lease_s, settings.max_attempts)
    if claim.status == "busy":
        return Outcome("busy", retry_in_s=claim.retry_in_s)
    if claim.status == "exhausted":
        return _record_lost(db, job_id, claim, settings.max_attempts)
    if claim.status != "claimed":
        return Outcome(claim.status)
    assert claim.token is not None and claim.kind is not None
    log.info("job %s (%s) claimed by %s, attempt %d", job_id, claim.kind, worker, claim.attempts)
    kind = job_kind(claim.kind)
    started = time.monotonic()
    tracker = Tracker(db, job_id, claim.token, claim.kind)
    if claim.attempts == 1:
        tracker.timings["queued"] = round(claim.queued_s, 4)
        PHASE_SECONDS.labels(claim.kind, "queued").observe(claim.queued_s)
    keeper = lease_keeper(db, settings.job_lease_s)
    keeper.hold(job_id, claim.token)
    journal = _journal(settings, job_id) if kind.queue == "chain" else None
    try:
        with _noting_transactions(journal):
            result = kind.runner(claim, ArtifactStore.from_settings(settings), settings, tracker)
    except jobs.Waiting as waiting:
        return _wait_for_children(db, job_id, claim.token, waiting, settings, tracker)
    except Exception as exc:
        if is_transient(exc):
            return _retry_later(db, claim, job_id, exc, settings, tracker)
        return _record_error(db, job_id, claim.token, kind, exc, tracker, started)
    except BaseException as exc:
        panic = panic_error(exc)
        if panic is None:
            raise
        return _record_error(db, job_id, claim.token, kind, panic, tracker, started)
    finally:
        keeper.release()
    tracker.close_phase()
    settled = jobs.succeed(db, job_id, claim.token, result, tracker.timings, kind.on_end)
    if settled is None:
        log.warning("job %s finished after its lease was taken over; not recorded", job_id)
        return Outcome("superseded")
    JOB_SECONDS.labels(claim.kind, "succeeded").observe(time.monotonic() - started)
    log.info("job %s succeeded in %.3f s", job_id, time.monotonic() - started)
    if journal is not None:
        journal.unlink(missing_ok=True)
    return Outcome("succeeded", follow_ups=settled.follow_ups)


def _wait_for_children(
    db: str, job_id: str, token: str, waiting: jobs.Waiting, settings: Settings, tracker: Tracker
) -> Outcome:
    """A job that waits (for its children, or a batch for its window): back to the queue,
    its new children sent. A child's end wakes a parent; the countdown is the fallback
    should that wake-up be lost, or the time left of a batch's window."""
    tracker.close_phase()
    jobs.postpone(db, job_id, token, waiting.phase, waiting.progress)
    delay = settings.child_poll_s if waiting.retry_in_s is None else waiting.retry_in_s
    return Outcome("queued", retry_in_s=delay, follow_ups=waiting.follow_ups)


def _record_error(
    db: str,
    job_id: str,
    token: str,
    kind: JobKind,
    exc: Exception,
    tracker: Tracker,
    started: float,
    error: dict[str, Any] | None = None,
) -> Outcome:
    """Fail the job with its reason (a ``ProverError``'s own, a transient fault's code past
    its deadline, else ``internal_error``)."""
    tracker.close_phase()
    error = error or error_of(exc)
    log.error("job %s failed: %s", job_id, error["message"], exc_info=exc)
    if jobs.fail(db, job_id, token, error, kind.on_end, tracker.timings):
        JOB_FAILURES.labels(kind.name, error["code"]).inc()
        JOB_SECONDS.labels(kind.name, "failed").observe(time.monotonic() - started)
    return Outcome("failed")


def _journal(settings: Settings, job_id: str) -> Path:
    """Where a chain job's signed transactions are noted before they are sent (shared by
    every worker, like the store), so a retry finds a transaction whose receipt was lost."""
    return settings.data_dir / "chain" / "journal" / f"{job_id}.json"


def _noting_transactions(journal: Path | None) -> contextlib.AbstractContextManager[Any]:
    if journal is None:
        return contextlib.nullcontext()
    from prover.chain.client import transactions  # web3: only on workers that run chain jobs

    return transactions(journal)


def error_of(exc: BaseException) -> dict[str, Any]:
    """The recorded form of an error: a ``ProverError``'s own; a library's transient fault
    named by the part that did not answer; else ``internal_error``."""
    if isinstance(exc, ProverError):
        return exc.to_dict()
    code = transient_code(exc) or "internal_error"
    return {"code": code, "message": f"{type(exc).__name__}: {exc}"}


def backoff_s(retries: int, settings: Settings) -> float:
    """The wait before retry number ``retries`` (1, 2, ...): doubling, capped."""
    doubled = settings.transient_backoff_s * 2 ** min(max(retries - 1, 0), 30)
    return float(min(doubled, settings.transient_backoff_max_s))


def _retry_later(
    db: str,
    claim: jobs.Claim,
    job_id: str,
    exc: Exception,
    settings: Settings,
    tracker: Tracker,
) -> Outcome:
    """A transient fault: the job goes back to the queue to be tried again after a backoff,
    with the fault on it (``GET /v1/jobs/{id}`` says why it waits), until it has been
    failing for ``transient_deadline_s``; then it fails with the fault's own code."""
    assert claim.token is not None and claim.kind is not None
    now = utcnow()
    since = datetime.fromisoformat(claim.failing_since) if claim.failing_since else now
    error = error_of(exc)
    if now - since >= timedelta(seconds=settings.transient_deadline_s):
        error["message"] = (
            f"{error['message']} (still failing after {claim.retries} retries over "
            f"{(now - since).total_seconds():.0f} s, past PROVER_TRANSIENT_DEADLINE_S)"
        )
        kind = job_kind(claim.kind)
        return _record_error(db, job_id, claim.token, kind, exc, tracker, time.monotonic(), error)
    delay = backoff_s(claim.retries + 1, settings)
    waiting = {
        **error,
        "transient": True,
        "retries": claim.retries + 1,
        "failing_since": since.isoformat(),
        "retry_at": (now + timedelta(seconds=delay)).isoformat(),
    }
    jobs.release(db, job_id, claim.token, waiting)
    log.warning(
        "job %s: transient fault, retry %d in %.1f s: %s", job_id, claim.retries + 1, delay, exc
    )
    return Outcome("queued", retry_in_s=delay)


def _record_lost(db: str, job_id: str, claim: jobs.Claim, max_attempts: int) -> Outcome:
    """A job started more often than allowed: each time its worker died with it."""
    assert claim.token is not None and claim.kind is not None
    error = {
        "code": "worker_lost",
        "message": f"the job was started {max_attempts} times and its worker was lost "
        "each time (killed, out of memory, or over the time limit)",
    }
    jobs.fail(db, job_id, claim.token, error, job_kind(claim.kind).on_end)
    JOB_FAILURES.labels(claim.kind, "worker_lost").inc()
    return Outcome("failed")
