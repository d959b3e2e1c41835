"""Tables of the metadata database (SQLAlchemy); artifacts themselves live in the store.

Models, circuits and proofs are named by content digests, so one row serves every key that
asks for the same thing; ``grants`` says which keys may see which rows.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(when: datetime) -> datetime:
    """An aware UTC time (SQLite hands back naive datetimes; every stored time is UTC)."""
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def iso_utc(when: datetime | None) -> str | None:
    """A stored time as ISO 8601 with its UTC offset, as the API shows times."""
    return None if when is None else as_utc(when).isoformat()


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[str]: JSON,
        datetime: DateTime(timezone=True),
    }


class ApiKey(Base):
    """An API key; only the sha256 of the secret is kept (keys are 256-bit random). Its
    scope (``prover.service.scopes``) says which routes it reaches."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16), server_default="request")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Circuit(Base):
    """A compile request's circuit: ``compiling`` until its job ends, then ready or failed."""

    __tablename__ = "circuits"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(64), index=True)
    model_name: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Proof(Base):
    """A proof request: (circuit, input digest[, nonce]); ``proving`` until its job ends."""

    __tablename__ = "proofs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    circuit_id: Mapped[str] = mapped_column(String(64), index=True)
    input_digest: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Batch(Base):
    """Requests of one key for one batch circuit gathered into one batch proof (dynamic
    batching, ``service.batching``); one job (``job_id``) proves it. ``open`` until that
    job takes its requests, then ``closed``; it takes requests while it holds
    ``open_key`` (circuit and key: unique, so a key has one such batch per circuit),
    given up when ``size`` reaches ``capacity`` or ``closes_at`` has passed."""

    __tablename__ = "batches"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    circuit_id: Mapped[str] = mapped_column(String(64), index=True)
    owner: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(16))
    open_key: Mapped[str | None] = mapped_column(String(100), unique=True, default=None)
    size: Mapped[int] = mapped_column(Integer, default=0)
    capacity: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closes_at: Mapped[datetime] = mapped_column()


class BatchItem(Base):
    """One request in a batch: its proof row and its input; positions follow ``seq``."""

    __tablename__ = "batch_items"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(String(32), index=True)
    proof_id: Mapped[str] = mapped_column(String(64))
    input: Mapped[dict[str, Any]] = mapped_column()
    # The request asked for its result on chain: the batch is settled once it is proven.
    settle: Mapped[bool] = mapped_column(Boolean, default=False)


class Job(Base):
    """One unit of queued work and its state machine: queued → running → succeeded | failed.

    A running job is held under a lease (``lease_token`` until ``lease_expires_at``) that its
    worker renews; only the lease holder may record the outcome.
    """

    __tablename__ = "jobs"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
    owner: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    phase: Mapped[str] = mapped_column(String(32), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Times it went back to the queue after a transient fault (not attempts: see jobs.release).
    retries: Mapped[int] = mapped_column(Integer, default=0)
    # The job that spawned this one and waits for it (a segment's proof, see jobs.spawn).
    parent_id: Mapped[str | None] = mapped_column(String(32), index=True, default=None)
    worker: Mapped[str | None] = mapped_column(String(255), default=None)
    lease_token: Mapped[str | None] = mapped_column(String(32), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class TrainingRun(Base):
    """A training run: ``steps_total`` step proofs on one step circuit, each starting from
    the weights the previous one produced; one ``train_step`` job at a time (``job_id``).

    Its request (initial weights, batches) is in the artifact store under ``runs``."""

    __tablename__ = "training_runs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    circuit_id: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))
    steps_total: Mapped[int] = mapped_column(Integer)  # rounds, for a federated run
    # Clients per round of a federated run (0: a run of single steps). A federated run's
    # ``proof_ids`` are its rounds' aggregation proofs (``service.federated``).
    clients: Mapped[int] = mapped_column(Integer, default=0)
    proof_ids: Mapped[list[str]] = mapped_column(default=list)
    job_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class Grant(Base):
    """Key ``key_id`` may see the row ``subject_id`` of ``subject_type`` (model, circuit,
    proof, job, run); see ``service.grants``. What is the key's own about a shared row is
    here too: ``name`` (a model's file name as this key uploaded it; on a circuit, its
    model's) and ``created_at`` (when this key first asked for it)."""

    __tablename__ = "grants"
    __table_args__ = (UniqueConstraint("key_id", "kind", "subject_id"),)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    subject_type: Mapped[str] = mapped_column("kind", String(16))
    subject_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Event(Base):
    """Something that happened to a key's job, in the order it happened (``seq``): what
    ``GET /v1/events`` streams and a client resumes from (``Last-Event-ID``)."""

    __tablename__ = "events"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(32), index=True)
    type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Webhook(Base):
    """An endpoint a key registered for some of its events (``prover.service.webhooks``).
    ``secret`` signs each delivery (shown once, at registration); a deleted one keeps its
    row, so that its deliveries stay explained, but gets nothing more."""

    __tablename__ = "webhooks"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    owner: Mapped[str] = mapped_column(String(32), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column()
    secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookDelivery(Base):
    """One event for one webhook: ``pending`` until an attempt is answered 2xx
    (``delivered``) or the retries run out (``failed``). ``id`` is the ``webhook-id`` a
    receiver deduplicates by; ``claim`` is the token of the one message allowed to send
    the next attempt, and ``next_attempt_at`` when the dispatcher may send one again."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_seq", "type"),
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    webhook_id: Mapped[str] = mapped_column(String(40), index=True)
    event_seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column()
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    claim: Mapped[str | None] = mapped_column(String(32), default=None)
    next_attempt_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
