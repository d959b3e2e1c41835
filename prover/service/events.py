"""The events of a key's jobs: each state a job enters (``job.queued``, ``job.running``,
``job.succeeded``, ``job.failed``) and each phase it starts (``job.progress``), with the
job's view, recorded in the transaction that changes the job, so an event exists exactly
when its change was committed. ``seq`` orders them across the service; a client resumes
after the last one it saw. Kept ``PROVER_EVENT_RETENTION_S`` (``prune``, by the workers'
sweep)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.orm import Session

from prover.service.db import session_scope
from prover.service.tables import Event, iso_utc, utcnow
from prover.service.webhooks import fan_out

PAGE = 100  # events read at once


def add_event(session: Session, owner: str, type_: str, subject_id: str, data: Any) -> None:
    """Record an event, and its webhook deliveries, in the caller's transaction."""
    event = Event(owner=owner, type=type_, subject_id=subject_id, data=data)
    session.add(event)
    fan_out(session, event)


def event_view(event: Event) -> dict[str, Any]:
    return {
        "id": event.seq,
        "type": event.type,
        "subject_id": event.subject_id,
        "data": event.data,
        "created_at": iso_utc(event.created_at),
    }


def events_after(db_url: str, owner: str, after: int) -> list[dict[str, Any]]:
    """The key's next events after ``after`` (at most ``PAGE``), oldest first."""
    with session_scope(db_url) as session:
        rows = session.scalars(
            select(Event)
            .where(Event.owner == owner, Event.seq > after)
            .order_by(Event.seq)
            .limit(PAGE)
        )
        return [event_view(e) for e in rows]


def last_event(db_url: str) -> int:
    """The newest event's ``seq`` service-wide (0 when none): where a new stream starts."""
    with session_scope(db_url) as session:
        return session.scalar(select(func.max(Event.seq))) or 0


def prune(db_url: str, older_than_s: float) -> int:
    """Remove events older than ``older_than_s``; how many."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    with session_scope(db_url) as session:
        result = cast(
            CursorResult[Any], session.execute(delete(Event).where(Event.created_at < cutoff))
        )
        return int(result.rowcount)
