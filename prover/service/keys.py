"""API keys: created by an operator, presented as ``Authorization: Bearer <key>``.

A key is 256 random bits; only its sha256 is stored, which is enough for secrets of that
entropy (no password-style stretching is needed) and lets a lookup be one indexed query.
Each key has a scope (``prover.service.scopes``): the routes it reaches.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from prover.errors import AuthError, NotFoundError
from prover.service.db import session_scope
from prover.service.scopes import DEFAULT_SCOPE, scope_named
from prover.service.tables import ApiKey, iso_utc, utcnow

KEY_PREFIX = "pk_"


class Caller(NamedTuple):
    """Whose key a request presented: what routes check (scope) and record (key id)."""

    key_id: str
    name: str
    scope: str


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _view(row: ApiKey) -> dict[str, Any]:
    """A key as listed: never its secret (which is not stored)."""
    return {
        "key_id": row.id,
        "name": row.name,
        "scope": row.scope,
        "created_at": iso_utc(row.created_at),
        "revoked": row.revoked_at is not None,
    }


def create_key(db_url: str, name: str = "default", scope: str = DEFAULT_SCOPE) -> dict[str, Any]:
    """A new key of ``scope``; the secret is returned once and never stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    scope = scope_named(scope)
    row = ApiKey(id=uuid.uuid4().hex, name=name, key_hash=_hash(key), scope=scope)
    with session_scope(db_url) as session:
        session.add(row)
    return {"key": key, "key_id": row.id, "name": name, "scope": scope}


def authenticate(session: Session, key: str | None) -> Caller:
    """The key's holder; raises ``AuthError`` naming what is wrong."""
    if not key:
        raise AuthError("this endpoint needs an API key: send 'Authorization: Bearer <key>'")
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == _hash(key)))
    if row is None:
        raise AuthError("unknown API key (create one with `prover keys create`)")
    if row.revoked_at is not None:
        raise AuthError(f"API key {row.id} was revoked")
    return Caller(row.id, row.name, row.scope)


def revoke_key(db_url: str, key_id: str) -> dict[str, Any]:
    """Revoke a key by id (again: no change); requests carrying it are refused from then
    on. Returns the key as listed."""
    with session_scope(db_url) as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise NotFoundError(f"no API key with id {key_id!r}")
        row.revoked_at = row.revoked_at or utcnow()
        return _view(row)


def list_keys(db_url: str) -> list[dict[str, Any]]:
    """Every key, revoked ones too, oldest first (for the operator: secrets are never
    listed)."""
    with session_scope(db_url) as session:
        rows = session.scalars(select(ApiKey).order_by(ApiKey.created_at)).all()
        return [_view(row) for row in rows]
