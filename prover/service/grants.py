"""Access grants: which API key may see which row.

Artifacts are content-addressed and shared (two keys uploading the same model get the same
model id), so ownership is not a column of the row but a grant: key → (subject type, id).
A row a key was not granted does not exist for that key (404, never 403). What is the
key's own about a shared row (the file name it uploaded a model under, when it asked) is on
its grant, so that no key sees another's.
"""

from __future__ import annotations

from typing import Literal, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from prover.errors import NotFoundError
from prover.service.tables import Grant, Job

SubjectType = Literal["model", "circuit", "proof", "job", "run", "batch"]
Row = TypeVar("Row")


def grant(
    session: Session,
    key_id: str,
    subject_type: SubjectType,
    subject_id: str,
    name: str | None = None,
) -> None:
    """Let a key see a row (idempotent), under the ``name`` this key gave it (the first
    one: the same request again answers the same)."""
    if not can_see(session, key_id, subject_type, subject_id):
        session.add(
            Grant(key_id=key_id, subject_type=subject_type, subject_id=subject_id, name=name)
        )
        session.flush()


def granted(
    session: Session, key_id: str, subject_type: SubjectType, subject_id: str
) -> Grant | None:
    """The key's grant of the row: what is the key's own about it (name, time)."""
    query = select(Grant).where(
        Grant.key_id == key_id,
        Grant.subject_type == subject_type,
        Grant.subject_id == subject_id,
    )
    return session.scalar(query)


def can_see(session: Session, key_id: str, subject_type: SubjectType, subject_id: str) -> bool:
    """Whether a key was granted the row."""
    return granted(session, key_id, subject_type, subject_id) is not None


def require(session: Session, key_id: str, subject_type: SubjectType, subject_id: str) -> None:
    """``NotFoundError`` unless the key may see the row."""
    if not can_see(session, key_id, subject_type, subject_id):
        raise NotFoundError(f"no {subject_type} with id {subject_id!r}", id=subject_id)


def visible_row(
    session: Session, key_id: str, subject_type: SubjectType, table: type[Row], row_id: str
) -> Row:
    """The row if it exists and the key may see it; ``NotFoundError`` otherwise."""
    row = session.get(table, row_id)
    if row is None:
        raise NotFoundError(f"no {subject_type} with id {row_id!r}", id=row_id)
    require(session, key_id, subject_type, row_id)
    return row


def own_jobs(session: Session, key_id: str, kind: str, rows: dict[str, str]) -> dict[str, Job]:
    """This key's job on each shared row (``rows``: row id → the row's job id): the newest
    job of ``kind`` on it that the key created, else the row's job if the key was granted
    it (a training step's proof). A row made by another key's job alone has none here."""
    if not rows:
        return {}
    query = (
        select(Job)
        .where(Job.owner == key_id, Job.kind == kind, Job.subject_id.in_(list(rows)))
        .order_by(Job.seq)
    )
    found = {job.subject_id: job for job in session.scalars(query)}
    for row_id, job_id in rows.items():
        if row_id not in found and can_see(session, key_id, "job", job_id):
            job = session.scalar(select(Job).where(Job.id == job_id))
            if job is not None:
                found[row_id] = job
    return found


def own_job(session: Session, key_id: str, kind: str, row_id: str, job_id: str) -> Job | None:
    """This key's job on one shared row (see ``own_jobs``)."""
    return own_jobs(session, key_id, kind, {row_id: job_id}).get(row_id)


def keys_of(session: Session, subject_type: SubjectType, subject_id: str) -> set[str]:
    """Every key that may see the row."""
    query = select(Grant.key_id).where(
        Grant.subject_type == subject_type, Grant.subject_id == subject_id
    )
    return set(session.scalars(query))


def granted_page(
    session: Session, key_id: str, subject_type: SubjectType, limit: int, cursor: int | None
) -> tuple[list[str], int | None]:
    """One page of the ids of a type the key may see, newest first, and the cursor of the
    next page (None on the last)."""
    query = select(Grant.seq, Grant.subject_id).where(
        Grant.key_id == key_id, Grant.subject_type == subject_type
    )
    if cursor is not None:
        query = query.where(Grant.seq < cursor)
    rows = session.execute(query.order_by(Grant.seq.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [r.subject_id for r in rows], (rows[-1].seq if more else None)
