"""Webhooks: a key registers endpoints for its events, lists and deletes them, and reads
each one's deliveries with their attempts (``prover.service.webhooks``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from prover.api.deps import JSON_ONLY, Cursor, Limit, Owner, SessionDep, SettingsDep
from prover.api.responses import JSON_BODY, errors
from prover.api.schemas import DeletedWebhook, NewWebhook, Page, WebhookRequest
from prover.service import webhooks
from prover.service.db import session_scope

router = APIRouter()


@router.post(
    "/v1/webhooks",
    status_code=201,
    response_model=NewWebhook,
    responses=errors(*JSON_BODY),
    dependencies=JSON_ONLY,
)
def register_webhook(body: WebhookRequest, key: Owner, settings: SettingsDep) -> dict[str, Any]:
    """Register an endpoint for some of this key's events. Each delivery is a POST of
    {id, type, created_at, event_id, data} signed in the Standard Webhooks scheme with
    the `secret` of this answer (its only showing); it is tried again with backoff for
    a day until the endpoint answers 2xx."""
    with session_scope(settings.sqlalchemy_url()) as session:
        allow = settings.webhook_allow_private
        return webhooks.register(session, key, body.url, body.events, allow)


@router.get("/v1/webhooks", response_model=Page, responses=errors())
def list_webhooks(
    key: Owner, session: SessionDep, limit: Limit = 20, cursor: Cursor = None
) -> dict[str, Any]:
    """This key's webhooks, newest first (never their secrets); pass next_cursor as cursor."""
    return webhooks.list_webhooks(session, key, limit, cursor)


@router.delete("/v1/webhooks/{webhook_id}", response_model=DeletedWebhook, responses=errors())
def delete_webhook(key: Owner, settings: SettingsDep, webhook_id: str) -> dict[str, Any]:
    """Delete a webhook: nothing more is sent to it, and what it had pending fails."""
    with session_scope(settings.sqlalchemy_url()) as session:
        return webhooks.delete_webhook(session, key, webhook_id)


@router.get("/v1/webhooks/{webhook_id}/deliveries", response_model=Page, responses=errors())
def list_deliveries(
    key: Owner, session: SessionDep, webhook_id: str, limit: Limit = 20, cursor: Cursor = None
) -> dict[str, Any]:
    """A webhook's deliveries, newest first: each one's state (pending, delivered or
    failed), its attempts (time, status or error, duration) and its next attempt."""
    return webhooks.list_deliveries(session, key, webhook_id, limit, cursor)
