"""Running one job on a worker: claim it, keep its lease, do the core work, record it.

Called by the Celery task with a job id; everything here works on the database and the
artifact store only, so it can be driven directly from Python too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import lru_cache

from prover.config import Settings
from prover.errors import ProverError, is_transient
from prover.metrics import JOB_FAILURES, JOB_SECONDS, PHASE_SECONDS
from prover.service import jobs
from prover.service.kinds import JobKind, job_kind
from prover.service.lease import LeaseKeeper
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
            jobs.report(self.db, self.job_id, self.token, phase, min(fraction, 0.99), self.timings)


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
    try:
        result = kind.runner(claim, ArtifactStore(settings.data_dir), settings, tracker)
    except Exception as exc:
        return _record_error(db, job_id, claim.token, kind, exc, tracker, started)
    finally:
        keeper.release()
    tracker.close_phase()
    settled = jobs.succeed(db, job_id, claim.token, result, tracker.timings, kind.on_end)
    if settled is None:
        log.warning("job %s finished after its lease was taken over; not recorded", job_id)
        return Outcome("superseded")
    JOB_SECONDS.labels(claim.kind, "succeeded").observe(time.monotonic() - started)
    log.info("job %s succeeded in %.3f s", job_id, time.monotonic() - started)
    return Outcome("succeeded", follow_ups=settled.follow_ups)


def _record_error(
    db: str,
    job_id: str,
    token: str,
    kind: JobKind,
    exc: Exception,
    tracker: Tracker,
    started: float,
) -> Outcome:
    """A transient error gives the job back to the queue; any other fails it with its
    reason (a ``ProverError``'s own, else ``internal_error``)."""
    if is_transient(exc):
        jobs.release(db, job_id, token)
        log.warning("job %s: transient error, will retry: %s", job_id, exc)
        return Outcome("queued", retry_in_s=5.0)
    tracker.close_phase()
    error = (
        exc.to_dict()
        if isinstance(exc, ProverError)
        else {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"}
    )
    log.error("job %s failed: %s", job_id, error["message"], exc_info=exc)
    if jobs.fail(db, job_id, token, error, kind.on_end, tracker.timings):
        JOB_FAILURES.labels(kind.name, error["code"]).inc()
        JOB_SECONDS.labels(kind.name, "failed").observe(time.monotonic() - started)
    return Outcome("failed")


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
