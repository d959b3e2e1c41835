"""Accepting work: check a request fully, record it idempotently, say which jobs to enqueue.

Everything a client can get wrong is checked here, before any job exists: the model
(intake), the calibration data, the options, the input's shape. The same compile request
twice is one circuit and one job; the same (circuit, input) twice is one proof unless the
client asks for a fresh one.

Each submission commits in a transaction of its own (by database URL), not in the
caller's: its jobs must be committed before they are enqueued (a worker that claims a job
must find it), and an insert that lost a race with an identical request is retried.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from prover.circuits.compiler import CompilePlan, plan_compile, store_model
from prover.circuits.data import sample_digest_material, to_ezkl_input
from prover.config import Settings
from prover.errors import ConflictError
from prover.proving.proofs import plan_proof
from prover.service import grants, jobs
from prover.service.db import session_scope
from prover.service.grants import SubjectType
from prover.service.options import CompileRequest
from prover.service.tables import Circuit, Job, Proof
from prover.store import ArtifactStore

Accepted = tuple[dict[str, Any], list[tuple[str, str]]]  # (response, jobs to enqueue)


def with_retry(db_url: str, body: Any) -> Any:
    """Run ``body(session)`` in a transaction; once more if a concurrent identical request
    inserted the same row first (the second run then finds it)."""
    try:
        with session_scope(db_url) as session:
            return body(session)
    except IntegrityError:
        with session_scope(db_url) as session:
            return body(session)


def _row_with_job(
    session: Session,
    row: Any,
    make_row: Callable[[str], Any],
    kind: str,
    subject_id: str,
    owner: str,
    params: dict[str, Any],
    working: str,
) -> tuple[Any, list[tuple[str, str]]]:
    """The circuit or proof row of a request, with a new job when it has none yet or its
    last one failed; returns (row, jobs to enqueue)."""
    if row is not None and row.state != "failed":
        return row, []
    job = jobs.new_job(session, kind, subject_id, owner, params)
    if row is None:
        row = make_row(job.id)
        session.add(row)
    else:
        row.state, row.job_id = working, job.id
    session.flush()
    return row, [(job.id, job.kind)]


def submit_compile(
    db_url: str,
    store: ArtifactStore,
    settings: Settings,
    owner: str,
    model_path: Path,
    calibration: Any | None,
    requested: CompileRequest,
) -> Accepted:
    """Accept a model for compilation; returns the response and the jobs to enqueue.
    ``settings`` give the intake limits and the default tolerance."""
    options = requested.core_options(settings)
    plan = plan_compile(model_path, calibration, options, settings)
    params = {
        "calibration": to_ezkl_input(plan.samples) if plan.source == "user" else None,
        "options": requested.settled(settings),
    }
    return accept_compile(db_url, store, owner, plan, params)


def accept_compile(
    db_url: str, store: ArtifactStore, owner: str, plan: CompilePlan, params: dict[str, Any]
) -> Accepted:
    """Record a checked compile plan: its model, circuit row and compile job (unless the
    circuit exists and has not failed). ``params`` tell the worker how to build it."""
    store_model(store, plan.info)
    params = {"model_id": plan.info.model_id, "model_name": plan.info.path.name, **params}

    def make_circuit(job_id: str) -> Circuit:
        return Circuit(
            id=plan.circuit_id,
            model_id=plan.info.model_id,
            model_name=plan.info.path.name,
            state="compiling",
            job_id=job_id,
        )

    def body(session: Session) -> Accepted:
        circuit, enqueue = _row_with_job(
            session,
            session.get(Circuit, plan.circuit_id),
            make_circuit,
            "compile",
            plan.circuit_id,
            owner,
            params,
            "compiling",
        )
        granted: list[tuple[SubjectType, str]] = [
            ("model", plan.info.model_id),
            ("circuit", circuit.id),
            ("job", circuit.job_id),
        ]
        for kind, subject in granted:
            grants.grant(session, owner, kind, subject)
        response = {
            "model_id": plan.info.model_id,
            "circuit_id": circuit.id,
            "job_id": circuit.job_id,
            "state": circuit.state,
        }
        return response, enqueue

    return with_retry(db_url, body)


def ready_circuit(session: Session, owner: str, circuit_id: str) -> Circuit:
    """A circuit the key may see and that has compiled; 404 or 409 otherwise."""
    circuit = grants.visible_row(session, owner, "circuit", Circuit, circuit_id)
    if circuit.state != "ready":
        job = session.scalar(select(Job).where(Job.id == circuit.job_id))
        detail = f"job {circuit.job_id}"
        if circuit.state == "failed" and job is not None and job.error:
            detail += f" failed: {job.error.get('message')}"
        advice = "wait for the job" if circuit.state == "compiling" else "submit it again"
        raise ConflictError(
            f"circuit {circuit_id} is {circuit.state}, not ready ({detail}); {advice}",
            circuit_id=circuit_id,
            job_id=circuit.job_id,
            state=circuit.state,
        )
    return circuit


def request_proof(
    db_url: str,
    store: ArtifactStore,
    owner: str,
    circuit_id: str,
    input_obj: Any,
    fresh: bool = False,
) -> Accepted:
    """Accept a proof request for a compiled circuit; returns the response and the jobs."""
    with session_scope(db_url) as session:
        ready_circuit(session, owner, circuit_id)
    plan = plan_proof(store, circuit_id, input_obj, fresh)
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

    def body(session: Session) -> Accepted:
        proof, enqueue = _row_with_job(
            session,
            session.get(Proof, plan.proof_id),
            make_proof,
            "prove",
            plan.proof_id,
            owner,
            params,
            "proving",
        )
        grants.grant(session, owner, "proof", proof.id)
        grants.grant(session, owner, "job", proof.job_id)
        response = {"proof_id": proof.id, "job_id": proof.job_id, "state": proof.state}
        return response, enqueue

    return with_retry(db_url, body)


def submit_chain_job(
    db_url: str,
    owner: str,
    kind: Literal["deploy", "submit"],
    subject_id: str,
    params: dict[str, Any],
) -> Accepted:
    """A deploy (subject: a ready circuit) or submit (subject: a ready proof) job."""
    table: type[Circuit] | type[Proof]
    what: SubjectType
    table, what = (Circuit, "circuit") if kind == "deploy" else (Proof, "proof")
    with session_scope(db_url) as session:
        row = grants.visible_row(session, owner, what, table, subject_id)
        if row.state != "ready":
            raise ConflictError(
                f"{what} {subject_id} is {row.state}, not ready (job {row.job_id})",
                job_id=row.job_id,
            )
        job = jobs.new_job(session, kind, subject_id, owner, params)
        return {"job_id": job.id, "state": job.state}, [(job.id, kind)]
