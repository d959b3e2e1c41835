"""Runs of proofs where each job is fed by the last one's proof: a training run (one
``train_step`` job per step) and a federated run (one ``fed_round`` job per round). Both
are accepted, started and advanced here; what differs is the job a step takes and the
proofs its end makes ready (``training`` and ``federated`` say)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from prover.service import grants, jobs
from prover.service.tables import Job, TrainingRun, utcnow

# Creates the job of a run's next step: (job id, kind).
StartJob = Callable[[Session, TrainingRun, str], tuple[str, str]]


def accept_run(
    session: Session, fresh: TrainingRun, owner: str, start_job: StartJob
) -> tuple[TrainingRun, list[tuple[str, str]]]:
    """The run ``fresh`` names, for ``owner``: added and started (``start_job``) if new,
    restarted at its first unproven step if it failed, else left as it is; the key may
    see it and its current job. Returns the run and the jobs to enqueue."""
    run = session.get(TrainingRun, fresh.id)
    if run is None:
        run = fresh
        session.add(run)
    enqueue = [start_job(session, run, owner)] if run is fresh or run.state == "failed" else []
    grants.grant(session, owner, "run", run.id)
    grants.grant(session, owner, "job", run.job_id)
    return run, enqueue


def start_next(
    session: Session, run: TrainingRun, owner: str, kind: str, params: dict[str, Any]
) -> tuple[str, str]:
    """Create the job of a run's next step; every key of the run may see it."""
    job = jobs.new_job(session, kind, run.id, owner, params)
    for key_id in grants.keys_of(session, "run", run.id):
        grants.grant(session, key_id, "job", job.id)
    run.job_id, run.state, run.finished_at = job.id, "running", None
    return job.id, job.kind


def advance(
    session: Session,
    job: Job,
    ok: bool,
    made: Callable[[TrainingRun, dict[str, Any]], tuple[list[jobs.MadeProof], str]],
    start_job: StartJob,
) -> list[tuple[str, str]]:
    """The ending of a run's step job: the proofs it made (``made``: the proof rows and
    the one the run records) become ready rows every key of the run may see, and the next
    step gets its job; a failed step fails the run. A job that is no longer the run's
    current one changes nothing."""
    run = session.get(TrainingRun, job.subject_id)
    if run is None or run.job_id != job.id:
        return []
    if not ok:
        run.state, run.finished_at = "failed", utcnow()
        return []
    assert job.result is not None
    proofs, recorded = made(run, job.result)
    keys = {job.owner, *grants.keys_of(session, "run", run.id)}
    for proof in proofs:
        jobs.ready_proof(session, proof, job.id, keys)
    run.proof_ids = [*run.proof_ids, recorded]
    if len(run.proof_ids) == run.steps_total:
        run.state, run.finished_at = "succeeded", utcnow()
        return []
    return [start_job(session, run, job.owner)]
