"""Reading what a key may see: models, circuits, proofs and jobs, with keyset pagination."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from prover.config import Settings
from prover.errors import InvalidInputError, NotFoundError
from prover.proving.proofs import proof_file as stored_proof_file
from prover.proving.proofs import verify
from prover.service import grants, jobs
from prover.service.db import session_scope
from prover.service.tables import Circuit, Job, Proof, TrainingRun
from prover.store import ArtifactStore

MAX_PAGE = 100


def page(
    settings: Settings, owner: str, kind: str, limit: int = 20, cursor: int | None = None
) -> dict[str, Any]:
    """One page of ids of ``kind`` the key may see, newest first; ``next_cursor`` continues."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError(f"limit must be between 1 and {MAX_PAGE}; got {limit}")
    with session_scope(settings.sqlalchemy_url()) as session:
        ids, next_cursor = grants.granted_page(session, owner, kind, limit, cursor)
    return {"ids": ids, "next_cursor": next_cursor}


def _require(settings: Settings, owner: str, kind: str, subject_id: str) -> None:
    with session_scope(settings.sqlalchemy_url()) as session:
        grants.require(session, owner, kind, subject_id)


def get_model(settings: Settings, owner: str, model_id: str) -> dict[str, Any]:
    _require(settings, owner, "model", model_id)
    return ArtifactStore(settings.data_dir).read_record("models", model_id)


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


def get_circuit(settings: Settings, owner: str, circuit_id: str) -> dict[str, Any]:
    """A circuit's state, and its full record (settings, accuracy, timings) once ready."""
    _require(settings, owner, "circuit", circuit_id)
    with session_scope(settings.sqlalchemy_url()) as session:
        row = session.get(Circuit, circuit_id)
        assert row is not None
        view = _circuit_view(row)
    if view["state"] == "ready":
        store = ArtifactStore(settings.data_dir)
        view["record"] = store.read_record("circuits", circuit_id)
        if store.exists("training", circuit_id):
            view["training"] = store.read_record("training", circuit_id)
    return view


def get_proof(settings: Settings, owner: str, proof_id: str) -> dict[str, Any]:
    """A proof's state, and once ready the proof, public instances, outputs and timings."""
    _require(settings, owner, "proof", proof_id)
    with session_scope(settings.sqlalchemy_url()) as session:
        row = session.get(Proof, proof_id)
        assert row is not None
        view = _proof_view(row)
        if row.state == "failed":
            job = session.scalar(select(Job).where(Job.id == row.job_id))
            view["error"] = job.error if job else None
    if view["state"] == "ready":
        record = ArtifactStore(settings.data_dir).read_record("proofs", proof_id)
        for name in ("proof", "instances", "outputs", "outputs_public", "timings", "dev_srs"):
            view[name] = record[name]
        view["proof_bytes"] = record["proof_bytes"]
        view["created_at"] = record["created_at"]
    return view


def proof_file(settings: Settings, owner: str, proof_id: str) -> str:
    """Path of a ready proof's ezkl proof JSON (for ezkl's own tools)."""
    view = get_proof(settings, owner, proof_id)
    if view["state"] != "ready":
        raise NotFoundError(f"proof {proof_id} is {view['state']}; it has no proof file yet")
    return str(stored_proof_file(ArtifactStore(settings.data_dir), proof_id))


def verify_proof(settings: Settings, owner: str, proof_id: str) -> dict[str, Any]:
    """Check a ready proof with ezkl against its circuit's verifying key."""
    view = get_proof(settings, owner, proof_id)
    if view["state"] != "ready":
        raise NotFoundError(f"proof {proof_id} is {view['state']}; there is nothing to verify")
    return verify(ArtifactStore(settings.data_dir), proof_id)


def get_job(settings: Settings, owner: str, job_id: str) -> dict[str, Any]:
    return jobs.get_job(settings.sqlalchemy_url(), job_id, owner)


def list_items(
    settings: Settings, owner: str, kind: str, limit: int = 20, cursor: int | None = None
) -> dict[str, Any]:
    """A page of short views of ``kind`` (model, circuit, proof, job, run), newest first."""
    ids = page(settings, owner, kind, limit, cursor)
    with session_scope(settings.sqlalchemy_url()) as session:
        if kind == "job":
            by_id = {
                j.id: jobs.job_view(j)
                for j in session.scalars(select(Job).where(Job.id.in_(ids["ids"])))
            }
        elif kind == "circuit":
            by_id = {
                c.id: _circuit_view(c)
                for c in session.scalars(select(Circuit).where(Circuit.id.in_(ids["ids"])))
            }
        elif kind == "proof":
            by_id = {
                p.id: _proof_view(p)
                for p in session.scalars(select(Proof).where(Proof.id.in_(ids["ids"])))
            }
        elif kind == "run":
            by_id = {
                r.id: run_summary(r)
                for r in session.scalars(select(TrainingRun).where(TrainingRun.id.in_(ids["ids"])))
            }
        else:
            store = ArtifactStore(settings.data_dir)
            by_id = {}
            for model_id in ids["ids"]:
                record = store.read_record("models", model_id)
                by_id[model_id] = {
                    "model_id": model_id,
                    "name": record["name"],
                    "parameter_count": record["parameter_count"],
                }
    items = [by_id[i] for i in ids["ids"] if i in by_id]
    return {"items": items, "next_cursor": ids["next_cursor"]}
