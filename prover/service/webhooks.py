"""Webhooks: a key's endpoints for some of its events, and every delivery to them.

* **Event types.** Each events row (``service.events``) is one or more webhook event
  types (``webhook_types``, the one place that says so): its own (``job.succeeded``,
  ``job.failed``, ...), and what it means in a client's words: a prove job that succeeded
  is also ``proof.ready``, a submit job ``chain.accepted``, a training step, client step
  or federated round ``training.step_proven``; a market request's new status is an event
  of its own, ``market.<status>`` (``service.market``).
* **Fan-out** happens in the transaction that writes the event (``fan_out``, called by
  ``events.add_event``): a delivery exists exactly when its event was committed, for the
  webhooks of the event's own key only, once per (webhook, event, type).
* **Delivery** is driven by the database, not by messages: the dispatcher
  (``worker.deliveries``) claims due deliveries (``claim_due``: a token, and the time
  after which another claim may be made should the message be lost) and sends one task
  each on the ``webhooks`` queue; the task ``take``s its claim (a duplicate message finds
  it gone and sends nothing), makes one attempt (``webhook_delivery.attempt``) and
  ``record``s it: delivered on a 2xx, else tried again after a random delay up to
  ``base * 2^(attempts - 1)`` (capped: "full jitter"), until ``PROVER_WEBHOOK_RETRY_FOR_S``
  after the event, then failed. The service sends each delivery until one attempt is
  answered 2xx; a receiver that answered but whose answer was lost gets it again, with
  the same ``webhook-id``.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from prover.config import Settings
from prover.errors import InvalidInputError, NotFoundError
from prover.service.db import session_scope
from prover.service.tables import (
    ApiKey,
    Event,
    Webhook,
    WebhookDelivery,
    as_utc,
    iso_utc,
    utcnow,
)
from prover.service.webhook_delivery import Attempt, Outcome, check_url
from prover.webhook_signature import new_secret

JOB_TYPES = ("job.queued", "job.running", "job.progress", "job.succeeded", "job.failed")
# A job kind whose success means more to a client than "a job succeeded".
SUCCESS_MEANS = {
    "prove": "proof.ready",
    "prove_batch": "proof.ready",
    "submit": "chain.accepted",
    "train_step": "training.step_proven",
    "client_step": "training.step_proven",
    "fed_round": "training.step_proven",
}
MARKET_PHASES = ("requested", "locked", "fulfilled", "expired")
EVENT_TYPES = (
    *JOB_TYPES,
    *sorted(set(SUCCESS_MEANS.values())),
    *(f"market.{phase}" for phase in MARKET_PHASES),
)
MAX_WEBHOOKS = 20  # live endpoints per key
CLAIM_S = 60.0  # a claimed delivery whose message never ran is claimed again after this


def webhook_types(event_type: str, data: dict[str, Any]) -> list[str]:
    """The webhook event types an events row of ``event_type`` about job ``data`` is."""
    types = [event_type]
    kind = data.get("kind")
    if event_type == "job.succeeded" and isinstance(kind, str) and kind in SUCCESS_MEANS:
        types.append(SUCCESS_MEANS[kind])
    return types


def check_events(events: list[str]) -> list[str]:
    """The subscribed types, deduplicated in order; ``InvalidInputError`` naming an unknown."""
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown or not events:
        raise InvalidInputError(
            f"unknown webhook event types {unknown}; choose among {list(EVENT_TYPES)}"
            if unknown
            else f"a webhook needs at least one event type; choose among {list(EVENT_TYPES)}",
            event_types=list(EVENT_TYPES),
        )
    return list(dict.fromkeys(events))


def webhook_view(hook: Webhook) -> dict[str, Any]:
    return {
        "webhook_id": hook.id,
        "url": hook.url,
        "events": hook.events,
        "created_at": iso_utc(hook.created_at),
    }


def register(
    session: Session, owner: str, url: str, events: list[str], allow_private: bool
) -> dict[str, Any]:
    """A new endpoint of ``owner`` for ``events``; the answer is the only one that shows
    its secret (Stripe's way: the receiver stores it then)."""
    events = check_events(events)
    check_url(url, allow_private)
    live = session.scalars(select(Webhook.id).where(_live(owner))).all()
    if len(live) >= MAX_WEBHOOKS:
        raise InvalidInputError(f"a key may have at most {MAX_WEBHOOKS} webhooks; delete one")
    hook = Webhook(id=f"wh_{uuid.uuid4().hex}", owner=owner, url=url, events=events)
    hook.secret = new_secret()
    session.add(hook)
    session.flush()
    return {**webhook_view(hook), "secret": hook.secret}


def _live(owner: str) -> Any:
    return (Webhook.owner == owner) & Webhook.deleted_at.is_(None)


def get_webhook(session: Session, owner: str, webhook_id: str) -> Webhook:
    """The key's live webhook; 404 for another key's, a deleted one or none."""
    hook = session.scalar(select(Webhook).where(_live(owner), Webhook.id == webhook_id))
    if hook is None:
        raise NotFoundError(f"no webhook {webhook_id!r} of this key", id=webhook_id)
    return hook


def list_webhooks(session: Session, owner: str, limit: int, cursor: int | None) -> dict[str, Any]:
    """A page of the key's live webhooks, newest first."""
    query = select(Webhook).where(_live(owner))
    if cursor is not None:
        query = query.where(Webhook.seq < cursor)
    rows = session.scalars(query.order_by(Webhook.seq.desc()).limit(limit + 1)).all()
    return _page([webhook_view(h) for h in rows[:limit]], rows, limit)


def _page(items: list[dict[str, Any]], rows: Any, limit: int) -> dict[str, Any]:
    more = len(rows) > limit
    return {"items": items, "next_cursor": rows[limit - 1].seq if more else None}


def delete_webhook(session: Session, owner: str, webhook_id: str) -> dict[str, Any]:
    """Stop sending to the endpoint: it is marked deleted and what it had pending fails."""
    hook = get_webhook(session, owner, webhook_id)
    hook.deleted_at = utcnow()
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == hook.id, WebhookDelivery.state == "pending")
        .values(state="failed", claim=None)
    )
    return {**webhook_view(hook), "deleted_at": iso_utc(hook.deleted_at)}


def delivery_view(row: WebhookDelivery) -> dict[str, Any]:
    return {
        "delivery_id": row.id,
        "event_id": row.event_seq,
        "type": row.type,
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt_at": iso_utc(row.next_attempt_at) if row.state == "pending" else None,
        "created_at": iso_utc(row.created_at),
        "delivered_at": iso_utc(row.delivered_at),
    }


def list_deliveries(
    session: Session, owner: str, webhook_id: str, limit: int, cursor: int | None
) -> dict[str, Any]:
    """A page of a webhook's deliveries with their attempts, newest first."""
    hook = get_webhook(session, owner, webhook_id)
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id)
    if cursor is not None:
        query = query.where(WebhookDelivery.seq < cursor)
    rows = session.scalars(query.order_by(WebhookDelivery.seq.desc()).limit(limit + 1)).all()
    return _page([delivery_view(d) for d in rows[:limit]], rows, limit)


def fan_out(session: Session, event: Event) -> None:
    """In the event's transaction: a pending delivery for each live webhook of the
    event's key (a revoked key's get none) subscribed to one of its types. Without such a
    webhook the caller's session is left as it was (nothing flushed early)."""
    with session.no_autoflush:
        hooks = session.scalars(
            select(Webhook)
            .join(ApiKey, ApiKey.id == Webhook.owner)
            .where(_live(event.owner), ApiKey.revoked_at.is_(None))
        ).all()
    if not hooks:
        return
    session.flush()  # the event's seq and time
    for type_ in webhook_types(event.type, event.data):
        for hook in hooks:
            if type_ in hook.events:
                session.add(_delivery(hook, event, type_))


def _delivery(hook: Webhook, event: Event, type_: str) -> WebhookDelivery:
    message_id = f"msg_{uuid.uuid4().hex}"
    payload = {
        "id": message_id,
        "type": type_,
        "created_at": iso_utc(event.created_at),
        "event_id": event.seq,
        "data": event.data,
    }
    return WebhookDelivery(
        id=message_id,
        webhook_id=hook.id,
        event_seq=event.seq,
        type=type_,
        payload=payload,
        state="pending",
        attempts=[],
        next_attempt_at=event.created_at,
    )


def claim_due(db_url: str, limit: int = 100) -> list[tuple[str, str]]:
    """Claim up to ``limit`` deliveries due now, each for one message: (delivery id,
    claim). A claim made by another dispatcher at the same time wins alone."""
    now = utcnow()
    due = (WebhookDelivery.state == "pending") & (WebhookDelivery.next_attempt_at <= now)
    claimed = []
    with session_scope(db_url) as session:
        ids = session.scalars(
            select(WebhookDelivery.id)
            .where(due)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        ).all()
        for delivery_id in ids:
            token = uuid.uuid4().hex
            result = session.execute(
                update(WebhookDelivery)
                .where(due, WebhookDelivery.id == delivery_id)
                .values(claim=token, next_attempt_at=now + timedelta(seconds=CLAIM_S))
            )
            if cast(CursorResult[Any], result).rowcount == 1:
                claimed.append((delivery_id, token))
    return claimed


def take(db_url: str, delivery_id: str, claim: str) -> Attempt | None:
    """The attempt a message with ``claim`` is to make, the claim spent so that no other
    message makes it; None when the claim is not the delivery's (a duplicate message, or
    one so late that the delivery was claimed again)."""
    with session_scope(db_url) as session:
        result = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.claim == claim,
                WebhookDelivery.state == "pending",
            )
            .values(claim=None)
        )
        if cast(CursorResult[Any], result).rowcount != 1:
            return None
        row = session.execute(
            select(WebhookDelivery.payload, Webhook.url, Webhook.secret)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .where(WebhookDelivery.id == delivery_id)
        ).one()
    body = json.dumps(row.payload, separators=(",", ":")).encode()
    return Attempt(delivery_id, row.url, row.secret, body)


def record(db_url: str, delivery_id: str, outcome: Outcome, settings: Settings) -> str:
    """Record an attempt; the delivery's state after it."""
    with session_scope(db_url) as session:
        row = session.scalar(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id))
        if row is None or row.state != "pending":  # the webhook was deleted meanwhile
            return "gone" if row is None else row.state
        row.attempts = [*row.attempts, outcome.as_dict()]
        now = utcnow()
        if outcome.delivered:
            row.state, row.delivered_at = "delivered", now
            return row.state
        later = retry_at(len(row.attempts), as_utc(row.created_at), now, settings)
        if later is None:
            row.state = "failed"
        else:
            row.next_attempt_at = later
        return row.state


def retry_at(attempts: int, first: datetime, now: datetime, settings: Settings) -> datetime | None:
    """When to try again after ``attempts`` failed ones (None: the retries are over):
    a random delay up to the doubling ceiling, never past the deadline."""
    deadline = first + timedelta(seconds=settings.webhook_retry_for_s)
    if now >= deadline:
        return None
    ceiling = settings.webhook_retry_base_s * 2.0 ** min(attempts - 1, 40)
    delay = random.uniform(0, min(ceiling, settings.webhook_retry_max_s))
    return min(now + timedelta(seconds=delay), deadline)


def prune(db_url: str, older_than_s: float) -> int:
    """Remove finished deliveries older than ``older_than_s``; how many."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    with session_scope(db_url) as session:
        result = session.execute(
            delete(WebhookDelivery).where(
                WebhookDelivery.state != "pending", WebhookDelivery.created_at < cutoff
            )
        )
        return int(cast(CursorResult[Any], result).rowcount)
