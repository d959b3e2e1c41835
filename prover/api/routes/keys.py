"""API keys over HTTP: any key reads its own identity; an admin key creates, lists and
revokes keys (what ``prover keys`` does on the database's host)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter

from prover.api.deps import JSON_ONLY, Admin, AnyKey, SettingsDep
from prover.api.responses import JSON_BODY, errors
from prover.api.schemas import KeyHolder, KeyList, KeyRequest, KeyView, NewKey
from prover.service.keys import create_key, list_keys, revoke_key

router = APIRouter()


@router.get("/v1/keys/me", response_model=KeyHolder, responses=errors())
def whoami(key: AnyKey) -> dict[str, Any]:
    """The presented key's id, name and scope, whatever its scope: how a prover or a
    console checks the key it was given before it relies on it."""
    return key._asdict()


@router.post(
    "/v1/keys",
    status_code=201,
    response_model=NewKey,
    responses=errors(*JSON_BODY),
    dependencies=JSON_ONLY,
)
def create(_admin: Admin, settings: SettingsDep, body: KeyRequest | None = None) -> dict[str, Any]:
    """Create a key (of scope `request` unless asked); its secret is in this answer only."""
    body = body or KeyRequest()
    return create_key(settings.sqlalchemy_url(), body.name, body.scope)


@router.get("/v1/keys", response_model=KeyList, responses=errors())
def list_all(_admin: Admin, settings: SettingsDep) -> dict[str, Any]:
    """Every key with its scope, revoked ones too, oldest first (never a secret)."""
    return {"items": list_keys(settings.sqlalchemy_url())}


# Key ids are UUIDs (as hex): matched as such, so that /v1/keys/me is not a key id too.
@router.delete("/v1/keys/{key_id:uuid}", response_model=KeyView, responses=errors())
def revoke(_admin: Admin, settings: SettingsDep, key_id: UUID) -> dict[str, Any]:
    """Revoke a key: requests that carry it are refused (401) from then on. Revoking it
    again changes nothing."""
    return revoke_key(settings.sqlalchemy_url(), key_id.hex)
