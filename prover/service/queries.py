"""Reading what a key may see: models, circuits, proofs and jobs, with keyset pagination.

Every function reads in the caller's session (the API's request transaction), so that one
request sees one consistent state and opens one transaction; the store holds the records.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from prover.errors import InvalidInputError, NotFoundError
from prover.proving.proofs import proof_file as stored_proof_file
from prover.proving.proofs import verify
from prover.service import grants, jobs
from prover.service.grants import SubjectType
from prover.service.tables import Circuit, Job, Proof, TrainingRun
from prover.store import ArtifactStore

MAX_PAGE = 100


def page(
    session: Session,
    owner: str,
    subject_type: SubjectType,
    limit: int = 20,
    cursor: int | None = None,
) -> dict[str, Any]:
    """One page of ids of a type the key may see, newest first; ``next_cursor`` continues."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError(f"limit must be between 1 and {MAX_PAGE}; got {limit}")
    ids, next_cursor = grants.granted_page(session, owner, subject_type, limit, cursor)
    return {"ids": ids, "next_cursor": next_cursor}


def get_model(session: Session, store: ArtifactStore, owner: str, model_id: str) -> dict[str, Any]:
    """A model's record (inputs, outputs, operators, parameter count)."""
    grants.require(session, owner, "model", model_id)
    return store.read_record("models", model_id)


def _circuit_view(row: Circuit) -> dict[str, Any]:
    return {
        "circuit_id": row.id,
        "state": row.state,
        "job_id": row.job_id,
        "model_id": row.model_id,
        "model_name": row.model_name,
    }


def _proof_view(row: Proof) -> dict[str, Any]:
    return {
        "proof_id": row.id,
        "state": row.state,
        "job_id": row.job_id,
        "circuit_id": row.circuit_id,
        "input_digest": row.input_digest,
    }


def run_summary(run: TrainingRun) -> dict[str, Any]:
    """The short form of a run (lists, and the answer to a submission)."""
    return {
        "run_id": run.id,
        "circuit_id": run.circuit_id,
        "state": run.state,
        "steps_total": run.steps_total,
        "steps_done": len(run.proof_ids),
        "job_id": run.job_id,
    }


def get_circuit(
    session: Session, store: ArtifactStore, owner: str, circuit_id: str
) -> dict[str, Any]:
    """A circuit's state, and its full record (settings, accuracy, timings) once ready."""
    row = grants.visible_row(session, owner, "circuit", Circuit, circuit_id)
    view = _circuit_view(row)
    if view["state"] == "ready":
        view["record"] = store.read_record("circuits", circuit_id)
        if store.exists("training", circuit_id):
            view["training"] = store.read_record("training", circuit_id)
    return view


def get_proof(session: Session, store: ArtifactStore, owner: str, proof_id: str) -> dict[str, Any]:
    """A proof's state, and once ready the proof, public instances, outputs and timings."""
    row = grants.visible_row(session, owner, "proof", Proof, proof_id)
    view = _proof_view(row)
    if row.state == "failed":
        job = session.scalar(select(Job).where(Job.id == row.job_id))
        view["error"] = job.error if job else None
    if view["state"] == "ready":
        record = store.read_record("proofs", proof_id)
        for name in ("proof", "instances", "outputs", "outputs_public", "timings", "dev_srs"):
            view[name] = record[name]
        view["proof_bytes"] = record["proof_bytes"]
        view["created_at"] = record["created_at"]
    return view


def proof_file(session: Session, store: ArtifactStore, owner: str, proof_id: str) -> str:
    """Path of a ready proof's ezkl proof JSON (for ezkl's own tools)."""
    view = get_proof(session, store, owner, proof_id)
    if view["state"] != "ready":
        raise NotFoundError(f"proof {proof_id} is {view['state']}; it has no proof file yet")
    return str(stored_proof_file(store, proof_id))


def verify_proof(
    session: Session, store: ArtifactStore, owner: str, proof_id: str
) -> dict[str, Any]:
    """Check a ready proof with ezkl against its circuit's verifying key."""
    view = get_proof(session, store, owner, proof_id)
    if view["state"] != "ready":
        raise NotFoundError(f"proof {proof_id} is {view['state']}; there is nothing to verify")
    return verify(store, proof_id)


def get_job(session: Session, owner: str, job_id: str) -> dict[str, Any]:
    """A job's public form, if the key may see it (404 otherwise, as for any id)."""
    job = session.scalar(select(Job).where(Job.id == job_id))  # (the key is seq, not id)
    if job is None or not grants.can_see(session, owner, "job", job_id):
        raise NotFoundError(f"no job with id {job_id!r}", id=job_id)
    return jobs.job_view(job)


def _rows_by_id(
    session: Session, store: ArtifactStore, subject_type: SubjectType, ids: list[str]
) -> dict[str, dict[str, Any]]:
    """The short view of each id of the type that still exists."""
    if subject_type == "job":
        return {j.id: jobs.job_view(j) for j in session.scalars(select(Job).where(Job.id.in_(ids)))}
    if subject_type == "circuit":
        circuits = session.scalars(select(Circuit).where(Circuit.id.in_(ids)))
        return {c.id: _circuit_view(c) for c in circuits}
    if subject_type == "proof":
        return {
            p.id: _proof_view(p) for p in session.scalars(select(Proof).where(Proof.id.in_(ids)))
        }
    if subject_type == "run":
        runs = session.scalars(select(TrainingRun).where(TrainingRun.id.in_(ids)))
        return {r.id: run_summary(r) for r in runs}
    by_id: dict[str, dict[str, Any]] = {}
    for model_id in ids:
        record = store.read_record("models", model_id)
        by_id[model_id] = {
            "model_id": model_id,
            "name": record["name"],
            "parameter_count": record["parameter_count"],
        }
    return by_id


def list_items(
    session: Session,
    store: ArtifactStore,
    owner: str,
    subject_type: SubjectType,
    limit: int = 20,
    cursor: int | None = None,
) -> dict[str, Any]:
    """A page of short views of a type (model, circuit, proof, job, run), newest first."""
    ids = page(session, owner, subject_type, limit, cursor)
    by_id = _rows_by_id(session, store, subject_type, ids["ids"])
    items = [by_id[i] for i in ids["ids"] if i in by_id]
    return {"items": items, "next_cursor": ids["next_cursor"]}
