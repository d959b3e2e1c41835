"""API keys: created by an operator, presented as ``Authorization: Bearer <key>``.

A key is 256 random bits; only its sha256 is stored, which is enough for secrets of that
entropy (no password-style stretching is needed) and lets a lookup be one indexed query.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from prover.errors import AuthError, NotFoundError
from prover.service.db import session_scope
from prover.service.tables import ApiKey, utcnow

KEY_PREFIX = "pk_"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(db_url: str, name: str = "default") -> dict[str, Any]:
    """A new key; the secret is returned once and never stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(id=uuid.uuid4().hex, name=name, key_hash=_hash(key))
    with session_scope(db_url) as session:
        session.add(row)
    return {"key": key, "key_id": row.id, "name": name}


def authenticate(session: Session, key: str | None) -> str:
    """The key id of a presented key; raises ``AuthError`` naming what is wrong."""
    if not key:
        raise AuthError("this endpoint needs an API key: send 'Authorization: Bearer <key>'")
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == _hash(key)))
    if row is None:
        raise AuthError("unknown API key (create one with `prover keys create`)")
    if row.revoked_at is not None:
        raise AuthError(f"API key {row.id} was revoked")
    return row.id


def revoke_key(db_url: str, key_id: str) -> None:
    """Revoke a key by id; requests carrying it are refused from then on."""
    with session_scope(db_url) as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise NotFoundError(f"no API key with id {key_id!r}")
        row.revoked_at = row.revoked_at or utcnow()


def list_keys(db_url: str) -> list[dict[str, Any]]:
    """Every key, revoked ones too (for the operator: secrets are never listed)."""
    with session_scope(db_url) as session:
        rows = session.scalars(select(ApiKey).order_by(ApiKey.created_at)).all()
        return [
            {
                "key_id": r.id,
                "name": r.name,
                "created_at": r.created_at.isoformat(),
                "revoked": r.revoked_at is not None,
            }
            for r in rows
        ]
