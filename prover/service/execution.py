"""Running one job on a worker: claim it, keep its lease, do the core work, record it.

Called by the Celery task with a job id; everything here works on the database and the
artifact store only, so it can be driven directly from Python too.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import requests
from sqlalchemy.exc import OperationalError

from prover.circuits.search import Progress
from prover.config import Settings
from prover.errors import ProverError, UnavailableError
from prover.metrics import JOB_FAILURES, JOB_SECONDS, PHASE_SECONDS
from prover.service import jobs
from prover.service.lease import LeaseKeeper
from prover.service.options import compile_options
from prover.store import ArtifactStore

log = logging.getLogger("prover.worker")

# Errors worth another try later: the database, the broker or the chain did not answer.
TRANSIENT = (OperationalError, ConnectionError, requests.ConnectionError, UnavailableError)


@dataclass(frozen=True)
class Outcome:
    """What the queue should do with the message: nothing more, or deliver it again later."""

    state: str
    retry_in_s: float | None = None
    follow_ups: list[tuple[str, str]] = field(default_factory=list)  # (job id, kind) to enqueue


class _Tracker:
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


def _compile_phase(message: str) -> str:
    if message.startswith("checking"):
        return "intake"
    if message.startswith("setup"):
        return "setup"
    return "search"


def _run_compile(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, track: _Tracker
) -> dict[str, Any]:
    from prover.circuits.compiler import build_circuit, plan_compile
    from prover.training.steps import build_step_circuit, planned_step, step_options

    assert claim.params is not None
    params = claim.params
    track("intake", 0.0)

    def say(message: str, fraction: float) -> None:
        track(_compile_phase(message), fraction)

    with tempfile.TemporaryDirectory() as tmp:
        # The stored model under the name it was uploaded with (the record keeps the name).
        named = Path(tmp) / params["model_name"]
        named.symlink_to(store.path("models", params["model_id"]) / "model.onnx")
        if "step" in params:  # a training-step circuit (see ``service.training``)
            request = params["step"]
            options = step_options(request["tolerance"], settings, request["reusable_verifier"])
            step = planned_step(
                named, request["calibration"], options, request["mean_update"], settings
            )
            _same_circuit(step.compile.circuit_id, claim.subject_id)
            record = build_step_circuit(step, store, settings, say)
        else:
            options = compile_options(params["options"], settings)
            plan = plan_compile(named, params["calibration"], options, settings)
            _same_circuit(plan.circuit_id, claim.subject_id)
            record = build_circuit(plan, options, store, settings, say)
    return {"circuit_id": record["id"], "logrows": record["logrows"], "cached": record["cached"]}


def _same_circuit(derived: str, requested: str | None) -> None:
    if derived != requested:
        raise ProverError(
            "this worker derives another circuit id for the request than the API did: "
            "the two run with different settings (SRS, ezkl version); align them"
        )


def _proof_phases(track: _Tracker) -> Progress:
    """Proof progress as job phases (witness, proving, verifying)."""
    return lambda message, fraction: track(message if message != "done" else "verifying", fraction)


def _run_prove(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, track: _Tracker
) -> dict[str, Any]:
    import numpy as np

    from prover.proving.proofs import ProofPlan, build_proof

    assert claim.params is not None and claim.subject_id is not None
    params = claim.params
    circuit = store.read_record("circuits", params["circuit_id"])
    sample = [np.asarray(values, dtype=np.float64) for values in params["input"]]
    plan = ProofPlan(circuit, sample, params["input_digest"], claim.subject_id)
    record = build_proof(store, plan, _proof_phases(track))
    return {"proof_id": record["id"], "outputs": record["outputs"], "timings": record["timings"]}


def _run_chain(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, track: _Tracker
) -> dict[str, Any]:
    from prover.chain.client import connect
    from prover.chain.onchain import deploy_circuit, submit_proof

    assert claim.params is not None and claim.subject_id is not None
    track("chain", 0.1)
    chain = connect(settings.rpc_url, settings.private_key)
    if claim.kind == "deploy":
        return deploy_circuit(store, claim.subject_id, chain, bool(claim.params.get("force")))
    return submit_proof(store, claim.subject_id, chain, bool(claim.params.get("commit_reveal")))


def _run_train_step(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, track: _Tracker
) -> dict[str, Any]:
    from prover.service.training import step_inputs
    from prover.training.steps import prove_step

    assert claim.params is not None and claim.subject_id is not None
    step = claim.params["step"]
    circuit_id, weights, x, y = step_inputs(store, claim.subject_id, step, claim.params["after"])
    record = prove_step(store, circuit_id, weights, x, y, _proof_phases(track))
    return {
        "step": step,
        "proof_id": record["proof_id"],
        "input_digest": record["input_digest"],
        "loss": record["loss"],
        "commitments": record["commitments"],
    }


def _run_ledger(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, track: _Tracker
) -> dict[str, Any]:
    from prover.chain.client import connect
    from prover.service.training import put_on_ledger

    assert claim.params is not None and claim.subject_id is not None
    track("chain", 0.0)
    chain = connect(settings.rpc_url, settings.private_key)
    return put_on_ledger(
        store, chain, claim.subject_id, claim.params["proof_ids"], lambda _m, f: track("chain", f)
    )


_RUNNERS = {
    "compile": _run_compile,
    "prove": _run_prove,
    "deploy": _run_chain,
    "submit": _run_chain,
    "train_step": _run_train_step,
    "ledger": _run_ledger,
}


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
    if claim.status != "claimed":
        return Outcome(claim.status)
    assert claim.token is not None and claim.kind is not None
    log.info("job %s (%s) claimed by %s, attempt %d", job_id, claim.kind, worker, claim.attempts)
    store = ArtifactStore(settings.data_dir)
    started = time.monotonic()
    tracker = _Tracker(db, job_id, claim.token, claim.kind)
    if claim.attempts == 1:
        tracker.timings["queued"] = round(claim.queued_s, 4)
        PHASE_SECONDS.labels(claim.kind, "queued").observe(claim.queued_s)
    keeper = lease_keeper(db, settings.job_lease_s)
    keeper.hold(job_id, claim.token)
    try:
        result = _RUNNERS[claim.kind](claim, store, settings, tracker)
    except TRANSIENT as exc:
        jobs.release(db, job_id, claim.token)
        log.warning("job %s: transient error, will retry: %s", job_id, exc)
        return Outcome("queued", retry_in_s=5.0)
    except Exception as exc:
        tracker.close_phase()
        error = (
            exc.to_dict()
            if isinstance(exc, ProverError)
            else {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"}
        )
        log.exception("job %s failed: %s", job_id, error["message"])
        if jobs.fail(db, job_id, claim.token, error, tracker.timings):
            JOB_FAILURES.labels(claim.kind, error["code"]).inc()
            JOB_SECONDS.labels(claim.kind, "failed").observe(time.monotonic() - started)
        return Outcome("failed")
    finally:
        keeper.release()
    tracker.close_phase()
    settled = jobs.succeed(db, job_id, claim.token, result, tracker.timings)
    if settled is None:
        log.warning("job %s finished after its lease was taken over; not recorded", job_id)
        return Outcome("superseded")
    JOB_SECONDS.labels(claim.kind, "succeeded").observe(time.monotonic() - started)
    log.info("job %s succeeded in %.3f s", job_id, time.monotonic() - started)
    return Outcome("succeeded", follow_ups=settled.follow_ups)
