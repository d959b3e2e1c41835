"""Reading what a key may see: models, circuits, proofs and jobs, with keyset pagination.

Every function reads in the caller's session (the API's request transaction), so that one
request sees one consistent state and opens one transaction; the store holds the records.

Models, circuits and proofs are shared between keys; what each view shows of a key's own
(the model's file name, the job, the time it asked) comes from that key's grant and jobs,
never from the key that happened to make the shared row first.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from prover.errors import ConflictError, InvalidInputError, NotFoundError
from prover.proving.records import proof_kind
from prover.service import grants, jobs
from prover.service.grants import SubjectType
from prover.service.tables import Circuit, Grant, Job, Proof, TrainingRun, iso_utc
from prover.store import ArtifactStore

MAX_PAGE = 100
MAX_CURSOR = 2**63 - 1  # cursors are row numbers: a signed 64-bit integer in every database


def page(
    session: Session,
    owner: str,
    subject_type: SubjectType,
    limit: int = 20,
    cursor: int | None = None,
) -> dict[str, Any]:
    """One page of ids of a type the key may see, newest first; ``next_cursor`` continues."""
    _check_page(limit, cursor)
    ids, next_cursor = grants.granted_page(session, owner, subject_type, limit, cursor)
    return {"ids": ids, "next_cursor": next_cursor}


def _check_page(limit: int, cursor: int | None) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError(f"limit must be between 1 and {MAX_PAGE}; got {limit}")
    if cursor is not None and not 0 <= cursor <= MAX_CURSOR:
        raise InvalidInputError(f"cursor must be between 0 and {MAX_CURSOR}; got {cursor}")


def _iso(grant: Grant | None) -> str | None:
    """When the key was granted the row, as aware UTC (SQLite hands back naive times)."""
    return None if grant is None else iso_utc(grant.created_at)


def _keys_own(record: dict[str, Any], grant: Grant | None, name_field: str) -> dict[str, Any]:
    """A shared store record as this key sees it: the name it gave and the time it asked,
    not the first uploader's."""
    own = {**record, "created_at": _iso(grant)}
    if grant is not None and grant.name is not None:
        own[name_field] = grant.name
    return own


def get_model(session: Session, store: ArtifactStore, owner: str, model_id: str) -> dict[str, Any]:
    """A model's record (inputs, outputs, operators, parameter count), under the file name
    this key uploaded it with."""
    grants.require(session, owner, "model", model_id)
    grant = grants.granted(session, owner, "model", model_id)
    return _keys_own(store.read_record("models", model_id), grant, "name")


def _circuit_view(row: Circuit, grant: Grant | None, job: Job | None) -> dict[str, Any]:
    return {
        "circuit_id": row.id,
        "state": row.state,
        "job_id": job.id if job else None,
        "model_id": row.model_id,
        "model_name": grant.name if grant and grant.name else row.model_name,
        "created_at": _iso(grant),
    }


def _proof_view(row: Proof, grant: Grant | None, job: Job | None) -> dict[str, Any]:
    return {
        "proof_id": row.id,
        "state": row.state,
        "job_id": job.id if job else None,
        "circuit_id": row.circuit_id,
        "input_digest": row.input_digest,
        "created_at": _iso(grant),
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
    grant = grants.granted(session, owner, "circuit", circuit_id)
    view = _circuit_view(row, grant, grants.own_job(session, owner, "compile", row.id, row.job_id))
    if view["state"] == "ready":
        record = store.read_record("circuits", circuit_id)
        view["record"] = _keys_own(record, grant, "model_name")
        if store.exists("training", circuit_id):
            view["training"] = store.read_record("training", circuit_id)
    return view


def get_proof(session: Session, store: ArtifactStore, owner: str, proof_id: str) -> dict[str, Any]:
    """A proof's state, and once ready the proof, public instances, outputs and timings."""
    row = grants.visible_row(session, owner, "proof", Proof, proof_id)
    job = grants.own_job(session, owner, "prove", row.id, row.job_id)
    view = _proof_view(row, grants.granted(session, owner, "proof", proof_id), job)
    if row.state == "failed":
        view["error"] = job.error if job else None
    if view["state"] == "ready":
        record = store.read_record("proofs", proof_id)
        for name in ("outputs", "outputs_public", "timings", "dev_srs"):
            view[name] = record[name]
        view.update(_proven_parts(store, record))
    return view


def _proven_parts(store: ArtifactStore, record: dict[str, Any]) -> dict[str, Any]:
    """What a ready proof shows by its kind: a composite its segments (one ezkl proof
    each); any other its ezkl proof, and a batch proof its N results, a batched request
    its place in its batch proof (with their on-chain result keys)."""
    from prover.chain.batches import batch_results, request_result_key

    kind = proof_kind(store, record)
    if kind == "composite":
        return {"segments": record["segments"]}
    parts = {name: record[name] for name in ("proof", "instances", "proof_bytes")}
    if kind == "batched":
        return {**parts, "batch": {**record["batch"], "result_key": request_result_key(record)}}
    results = batch_results(store, record["id"]) if kind == "batch" else None
    return {**parts, "results": results}


def ready_proof_file(
    session: Session, store: ArtifactStore, owner: str, proof_id: str, segment: int | None = None
) -> str:
    """Path of a ready proof's ezkl proof JSON (for ezkl's own tools); of a composite
    proof, the one of segment ``segment``."""
    view = get_proof(session, store, owner, proof_id)
    if view["state"] != "ready":
        raise _not_ready(proof_id, view, "it has no proof file yet")
    segments = view.get("segments")
    if segments is None:
        if segment is not None:
            raise InvalidInputError(f"proof {proof_id} is one proof, not made of segments")
        from prover.proving.proofs import proof_file as stored_proof_file

        return str(stored_proof_file(store, proof_id))
    if segment is None or not 0 <= segment < len(segments):
        raise InvalidInputError(
            f"proof {proof_id} is a composite of {len(segments)} segment proofs: ask for one "
            f"with ?segment=0..{len(segments) - 1}",
            segments=len(segments),
        )
    return str(store.path("proofs", proof_id) / segments[segment]["proof_file"])


def verify_proof(
    session: Session, store: ArtifactStore, owner: str, proof_id: str
) -> dict[str, Any]:
    """Check a ready proof with ezkl against its circuit's verifying key."""
    view = get_proof(session, store, owner, proof_id)
    if view["state"] != "ready":
        raise _not_ready(proof_id, view, "there is nothing to verify yet")
    from prover.proving.proofs import verify

    return verify(store, proof_id)


def _not_ready(proof_id: str, view: dict[str, Any], what: str) -> ConflictError:
    """409: the proof exists for this key but is still proving (or failed)."""
    return ConflictError(
        f"proof {proof_id} is {view['state']}; {what}",
        proof_id=proof_id,
        job_id=view["job_id"],
        state=view["state"],
    )


def get_job(session: Session, owner: str, job_id: str) -> dict[str, Any]:
    """A job's public form, if the key may see it (404 otherwise, as for any id)."""
    job = session.scalar(select(Job).where(Job.id == job_id))  # (the key is seq, not id)
    if job is None or not grants.can_see(session, owner, "job", job_id):
        raise NotFoundError(f"no job with id {job_id!r}", id=job_id)
    return jobs.job_view(job)


def _rows_by_id(
    session: Session, store: ArtifactStore, owner: str, subject_type: SubjectType, ids: list[str]
) -> dict[str, dict[str, Any]]:
    """The short view, as this key sees it, of each id of the type that still exists."""
    if subject_type == "job":
        return {j.id: jobs.job_view(j) for j in session.scalars(select(Job).where(Job.id.in_(ids)))}
    if subject_type == "run":
        runs = session.scalars(select(TrainingRun).where(TrainingRun.id.in_(ids)))
        return {r.id: run_summary(r) for r in runs}
    own = _grants_by_id(session, owner, subject_type, ids)
    if subject_type == "model":
        return {model_id: _model_summary(store, model_id, own.get(model_id)) for model_id in ids}
    if subject_type == "circuit":
        circuits = list(session.scalars(select(Circuit).where(Circuit.id.in_(ids))))
        made = grants.own_jobs(session, owner, "compile", {c.id: c.job_id for c in circuits})
        return {c.id: _circuit_view(c, own.get(c.id), made.get(c.id)) for c in circuits}
    proofs = list(session.scalars(select(Proof).where(Proof.id.in_(ids))))
    made = grants.own_jobs(session, owner, "prove", {p.id: p.job_id for p in proofs})
    return {p.id: _proof_view(p, own.get(p.id), made.get(p.id)) for p in proofs}


def _grants_by_id(
    session: Session, owner: str, subject_type: SubjectType, ids: list[str]
) -> dict[str, Grant]:
    query = select(Grant).where(
        Grant.key_id == owner, Grant.subject_type == subject_type, Grant.subject_id.in_(ids)
    )
    return {grant.subject_id: grant for grant in session.scalars(query)}


def _model_summary(store: ArtifactStore, model_id: str, grant: Grant | None) -> dict[str, Any]:
    record = _keys_own(store.read_record("models", model_id), grant, "name")
    return {
        "model_id": model_id,
        "name": record["name"],
        "parameter_count": record["parameter_count"],
        "created_at": record["created_at"],
    }


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
    by_id = _rows_by_id(session, store, owner, subject_type, ids["ids"])
    items = [by_id[i] for i in ids["ids"] if i in by_id]
    return {"items": items, "next_cursor": ids["next_cursor"]}


def list_jobs(
    session: Session,
    store: ArtifactStore,
    owner: str,
    limit: int = 20,
    cursor: int | None = None,
    kind: str | None = None,
    subject_id: str | None = None,
) -> dict[str, Any]:
    """A page of the key's jobs, newest first; with ``kind`` and/or ``subject_id``, only the
    jobs of that kind about that subject (a circuit's deployments, a proof's submissions),
    filtered in the database. Cursors are the grants' row numbers, as in the unfiltered
    list: ``next_cursor`` continues the filtered list."""
    if kind is None and subject_id is None:
        return list_items(session, store, owner, "job", limit, cursor)
    _check_page(limit, cursor)
    query = (
        select(Grant.seq, Job)
        .join(Job, Job.id == Grant.subject_id)
        .where(Grant.key_id == owner, Grant.subject_type == "job")
    )
    if kind is not None:
        query = query.where(Job.kind == kind)
    if subject_id is not None:
        query = query.where(Job.subject_id == subject_id)
    if cursor is not None:
        query = query.where(Grant.seq < cursor)
    rows = session.execute(query.order_by(Grant.seq.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [jobs.job_view(row.Job) for row in rows],
        "next_cursor": rows[-1].seq if more else None,
    }
