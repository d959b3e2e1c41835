"""Dynamic batching: one key's single requests for one batch circuit, arriving within a
window, proven together in one batch proof.

A proof request with ``batching`` joins its key's open batch of the circuit, or opens one
together with the ``prove_batch`` job that will prove it. A batch closes when it holds
min(N, ``PROVER_BATCH_MAX``) requests or ``PROVER_BATCH_WINDOW_MS`` after it opened,
whichever comes first; its job then proves every request in it at once
(``proving.batched``), so a lone request waits the window at most. Keys are never mixed:
a batch is one key's, as another key's inputs in a proof would show in its instances.

Each request is a proof row of its own (its id digests the circuit, the input and the
key), with its own record, verification and export; its job is its batch's.

Joining is a compare-and-set on the batch row (room left, window not over) in the
request's transaction, and closing is one too, so a request either lands in the batch its
job proves or opens a new one; a key has one batch taking requests per circuit (a unique
``open_key``), so concurrent requests fill one batch before the next opens.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, literal, null, select, update
from sqlalchemy.orm import Session

from prover.circuits.data import parse_sample, sample_digest_material
from prover.circuits.layouts import stored_layout
from prover.circuits.ranges import check_input
from prover.config import Settings
from prover.errors import InvalidInputError
from prover.service import grants, jobs
from prover.service.accepting import Accepted, ready_circuit, with_retry
from prover.service.capacity import check_capacity
from prover.service.db import session_scope
from prover.service.tables import Batch, BatchItem, Job, Proof, as_utc, utcnow
from prover.store import ArtifactStore, canonical_digest

if TYPE_CHECKING:
    from prover.proving.batched import Request


def request_batched(
    settings: Settings,
    store: ArtifactStore,
    owner: str,
    circuit_id: str,
    input_obj: Any,
    *,
    fresh: bool = False,
    capacity_bytes: int | None = None,
    settle: bool = False,
) -> Accepted:
    """Accept one input for a batch circuit, to be proven with this key's other requests
    of the window; returns the response and the jobs to enqueue. With ``capacity_bytes``,
    a batch proof that needs more memory than that is refused. With ``settle``, the batch
    goes on chain once proven (``batch_follows``)."""
    db_url = settings.sqlalchemy_url()
    with session_scope(db_url) as session:
        ready_circuit(session, owner, circuit_id)
    circuit = store.read_record("circuits", circuit_id)
    if capacity_bytes is not None:
        check_capacity(store, circuit, capacity_bytes)
    try:
        layout = stored_layout(store, circuit)
    except InvalidInputError:
        raise InvalidInputError(
            f"circuit {circuit_id} proves one input per proof: batching needs a batch "
            "circuit (compile the model with batch_size N)",
            circuit_id=circuit_id,
        ) from None
    sample = parse_sample(input_obj, list(layout.inputs))
    check_input(sample, list(layout.inputs), circuit["settings"])
    material = sample_digest_material(sample)
    input_digest = canonical_digest(material)
    identity = {"circuit": circuit_id, "input": input_digest, "key": owner, "batched": True}
    if fresh:
        identity["nonce"] = uuid.uuid4().hex
    proof_id = canonical_digest(identity)
    capacity = min(layout.n, settings.batch_max)
    window = timedelta(milliseconds=settings.batch_window_ms)

    def body(session: Session) -> Accepted:
        row = session.get(Proof, proof_id)
        if row is not None and row.state != "failed":  # asked before: the same request
            return {"proof_id": row.id, "job_id": row.job_id, "state": row.state}, []
        batch, enqueue = _join(session, owner, circuit_id, capacity, window)
        item = BatchItem(
            batch_id=batch.id, proof_id=proof_id, input={"input_data": material}, settle=settle
        )
        session.add(item)
        if row is None:
            row = Proof(id=proof_id, circuit_id=circuit_id, input_digest=input_digest)
            session.add(row)
        row.state, row.job_id = "proving", batch.job_id
        grants.grant(session, owner, "proof", proof_id)
        response = {"proof_id": proof_id, "job_id": batch.job_id, "state": row.state}
        return {**response, "batch_id": batch.id}, enqueue

    # Each lost race means another request opened the key's batch, which this run joins;
    # only a batch filling up between the two makes it race again.
    return with_retry(db_url, body, attempts=8)


def _join(
    session: Session, owner: str, circuit_id: str, capacity: int, window: timedelta
) -> tuple[Batch, list[tuple[str, str]]]:
    """The key's batch of the circuit that takes requests, now one request larger, or a
    new batch and its job (enqueued: it waits out the window); the job is enqueued again
    when this request fills the batch. A concurrent request that opened the key's batch
    first makes this insert fail (``open_key`` is unique): ``with_retry`` then joins it."""
    now, key = utcnow(), f"{circuit_id}:{owner}"
    batch = session.scalar(select(Batch).where(Batch.open_key == key))
    if batch is not None:
        has_room = (Batch.id == batch.id) & (Batch.open_key == key)
        has_room &= (Batch.size < Batch.capacity) & (Batch.closes_at > now)
        filled = Batch.size + 1 >= Batch.capacity
        grown = {"size": Batch.size + 1, "open_key": case((filled, null()), else_=literal(key))}
        # (not synchronized in Python: SQLite hands back naive times to compare)
        growing = update(Batch).where(has_room).values(**grown)
        if jobs.updated(session, growing.execution_options(synchronize_session=False)):
            session.refresh(batch)
            return batch, [] if batch.open_key else [(batch.job_id, "prove_batch")]
        given_up = update(Batch).where(Batch.id == batch.id, Batch.open_key == key)
        jobs.updated(session, given_up.values(open_key=None))  # full, or its window is over
    batch_id = uuid.uuid4().hex
    params = {"batch_id": batch_id, "circuit_id": circuit_id}
    job = jobs.new_job(session, "prove_batch", batch_id, owner, params)
    batch = Batch(
        id=batch_id,
        circuit_id=circuit_id,
        owner=owner,
        state="open",
        open_key=key if capacity > 1 else None,
        size=1,
        capacity=capacity,
        job_id=job.id,
        created_at=now,
        closes_at=now + window,
    )
    session.add(batch)
    session.flush()
    return batch, [(job.id, "prove_batch")]


def close_when_due(db_url: str, batch_id: str) -> list[Request]:
    """The requests of a batch, closing it if it is full or its window is over;
    ``jobs.Waiting`` (until the window ends) while it may still take requests."""
    with session_scope(db_url) as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None, f"batch {batch_id} has no row"
        if batch.state == "open":
            left = (as_utc(batch.closes_at) - utcnow()).total_seconds()
            if batch.open_key is not None and left > 0:
                phase = f"batching {batch.size}/{batch.capacity}"
                raise jobs.Waiting(phase, 0.0, retry_in_s=left)
            closing = update(Batch).where(Batch.id == batch_id, Batch.state == "open")
            jobs.updated(session, closing.values(state="closed", open_key=None))
    with session_scope(db_url) as session:
        query = (
            select(BatchItem, Proof.input_digest)
            .join(Proof, Proof.id == BatchItem.proof_id)
            .where(BatchItem.batch_id == batch_id)
            .order_by(BatchItem.seq)
        )
        from prover.proving.batched import Request

        return [
            Request(item.proof_id, item.input, digest) for item, digest in session.execute(query)
        ]


def batch_follows(session: Session, job: Job, ok: bool) -> list[tuple[str, str]]:
    """The ending of a batch's job: every request in it ready (or failed), the batch
    closed (a failed job's batch takes no more requests), the batch proof a row of the
    key's own, and, if a request asked to settle, one ``submit`` job for the whole batch
    (the settler: every result in one transaction). A request asked again meanwhile in a
    later batch is that batch's."""
    closed = {"state": "closed", "open_key": None}
    session.execute(update(Batch).where(Batch.id == job.subject_id).values(**closed))
    items = list(session.scalars(select(BatchItem).where(BatchItem.batch_id == job.subject_id)))
    for item in items:
        row = session.get(Proof, item.proof_id)
        if row is None or row.job_id != job.id:
            continue
        if ok:
            row.state = "ready"
        elif row.state != "ready":
            row.state = "failed"
    if ok and job.result is not None:
        made = job.result["batch_proof_id"]
        batch_proof = jobs.MadeProof(
            proof_id=made,
            circuit_id=job.params["circuit_id"],
            input_digest=job.result["input_digest"],
        )
        jobs.ready_proof(session, batch_proof, job.id, [job.owner])
        if any(item.settle for item in items):
            settler = jobs.new_job(session, "submit", made, job.owner, {"commit_reveal": False})
            job.result = {**job.result, "submit_job_id": settler.id}
            return [(settler.id, settler.kind)]
    return []
