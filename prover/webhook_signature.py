"""Signing and verifying webhook deliveries, in the Standard Webhooks scheme (Svix's).

A delivery carries three headers: ``webhook-id`` (the message's id: the same on every
retry, so a receiver recognises a duplicate), ``webhook-timestamp`` (Unix seconds when
this attempt was signed) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256>`` over
``"{id}.{timestamp}.{body}"``, keyed by the endpoint's secret without its ``whsec_``
prefix, base64-decoded). Signing the timestamp with the body lets a receiver refuse a
replayed old delivery. The standard's own libraries (``standardwebhooks``, ``svix``)
verify these deliveries as well.

This module needs only the standard library: a receiver imports it without the service::

    from prover.webhook_signature import verify_signature
    event = verify_signature(secret, request.headers, request.body)  # raises if not ours
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

PREFIX = "whsec_"
TOLERANCE_S = 300  # how far a delivery's timestamp may be from the receiver's clock


class SignatureError(ValueError):
    """A delivery that is not signed with the secret, or signed too long ago (or ahead)."""


def new_secret() -> str:
    """A fresh endpoint secret: ``whsec_`` and 32 random bytes in base64."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value of a delivery."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, message_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The three headers of one attempt of a delivery."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_s: float = TOLERANCE_S,
    now: float | None = None,
) -> Any:
    """The delivery's JSON body, if ``headers`` sign ``body`` with ``secret`` within
    ``tolerance_s`` of ``now``; else ``SignatureError`` naming what failed. ``headers``
    is any mapping (their names are matched case-insensitively); ``body`` the raw bytes
    received, before any parsing."""
    lower = {k.lower(): v for k, v in headers.items()}
    message_id, stamp = lower.get("webhook-id"), lower.get("webhook-timestamp")
    signatures = lower.get("webhook-signature")
    if not (message_id and stamp and signatures):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureError(f"webhook-timestamp is not a Unix time: {stamp!r}") from None
    skew = abs((time.time() if now is None else now) - timestamp)
    if skew > tolerance_s:
        raise SignatureError(f"webhook-timestamp is {skew:.0f} s away (over {tolerance_s} s)")
    expected = sign(secret, message_id, timestamp, body)
    if not any(hmac.compare_digest(expected, s) for s in signatures.split()):
        raise SignatureError("no webhook-signature matches the body with this secret")
    return json.loads(body)
