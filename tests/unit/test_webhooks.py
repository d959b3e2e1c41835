"""Webhooks without a stack: the signature a receiver checks, the event types an events
row is, the addresses refused, the retry schedule, and the fan-out to the event's own
key's webhooks only."""

from __future__ import annotations

import ipaddress
import json
import time
from datetime import timedelta
from pathlib import Path

import pytest

from prover.config import Settings
from prover.errors import InvalidInputError, NotFoundError, WebhookAddressError
from prover.service import jobs, webhooks
from prover.service.db import migrate, session_scope
from prover.service.keys import create_key
from prover.service.tables import WebhookDelivery, utcnow
from prover.service.webhook_delivery import blocked_reason, check_url
from prover.webhook_signature import SignatureError, new_secret, sign, verify_signature

BODY = json.dumps({"id": "msg_1", "type": "proof.ready", "data": {"job_id": "j"}}).encode()


def signed(secret: str, body: bytes = BODY, at: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if at is None else at
    return {
        "Webhook-Id": "msg_1",
        "Webhook-Timestamp": str(stamp),
        "Webhook-Signature": sign(secret, "msg_1", stamp, body),
    }


def test_a_signed_delivery_verifies_and_a_tampered_or_old_one_does_not() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert verify_signature(secret, signed(secret), BODY)["type"] == "proof.ready"
    with pytest.raises(SignatureError, match="no webhook-signature matches"):
        verify_signature(secret, signed(secret), BODY.replace(b"proof", b"chain"))
    with pytest.raises(SignatureError, match="no webhook-signature matches"):
        verify_signature(new_secret(), signed(secret), BODY)
    old = signed(secret, at=int(time.time()) - 301)
    with pytest.raises(SignatureError, match="over 300 s"):
        verify_signature(secret, old, BODY)
    assert verify_signature(secret, old, BODY, tolerance_s=600)["id"] == "msg_1"
    with pytest.raises(SignatureError, match="missing"):
        verify_signature(secret, {"webhook-id": "msg_1"}, BODY)


def test_any_of_several_signatures_may_match() -> None:
    """Standard Webhooks sends space-separated signatures while a secret rotates."""
    secret, headers = new_secret(), signed(new_secret())
    headers["Webhook-Signature"] += " " + signed(secret)["Webhook-Signature"]
    assert verify_signature(secret, headers, BODY)["id"] == "msg_1"


def test_an_events_row_is_its_type_and_what_it_means() -> None:
    def types(event: str, kind: str, phase: str = "") -> list[str]:
        return webhooks.webhook_types(event, {"kind": kind, "phase": phase})

    assert types("job.succeeded", "prove") == ["job.succeeded", "proof.ready"]
    assert types("job.succeeded", "submit") == ["job.succeeded", "chain.accepted"]
    assert types("job.succeeded", "fed_round") == ["job.succeeded", "training.step_proven"]
    assert types("job.failed", "prove") == ["job.failed"]
    assert types("job.succeeded", "compile") == ["job.succeeded"]
    assert types("job.progress", "market", "locked") == ["job.progress"]  # the job's phase
    # A market request's status is an event of its own (service.market), sent as it is.
    assert webhooks.webhook_types("market.locked", {"status": "locked"}) == ["market.locked"]
    assert set(webhooks.EVENT_TYPES) >= {"proof.ready", "market.expired", "job.failed"}


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "not globally routable"),
        ("8.8.8.8", None),
    ],
)
def test_addresses_a_production_service_must_not_call(address: str, why: str | None) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) == why


def test_urls_are_refused_naming_why() -> None:
    with pytest.raises(WebhookAddressError, match=r"127\.0\.0\.1, a loopback address") as got:
        check_url("http://127.0.0.1:9/hook", allow_private=False)
    assert got.value.status == 422 and got.value.details["reason"] == "loopback"
    with pytest.raises(WebhookAddressError, match="a private address"):
        check_url("https://10.0.0.7/hook", allow_private=False)
    check_url("http://127.0.0.1:9/hook", allow_private=True)
    for bad in ("ftp://example.com/x", "http:///x", "http://u:p@127.0.0.1/", "http://h:99999/"):
        with pytest.raises(InvalidInputError):
            check_url(bad, allow_private=True)


def test_retries_back_off_with_full_jitter_for_a_day() -> None:
    settings = Settings(webhook_retry_base_s=1.0, webhook_retry_max_s=3600.0)
    first = utcnow()
    for attempts, ceiling in ((1, 1.0), (3, 4.0), (20, 3600.0)):
        delays = [
            (webhooks.retry_at(attempts, first, first, settings) - first).total_seconds()  # type: ignore[operator]
            for _ in range(200)
        ]
        assert 0 <= min(delays) < ceiling / 4 and ceiling * 3 / 4 < max(delays) <= ceiling
    late = first + timedelta(hours=23, minutes=59, seconds=59)
    assert webhooks.retry_at(30, first, late, settings) <= first + timedelta(days=1)  # type: ignore[operator]
    assert webhooks.retry_at(30, first, first + timedelta(days=1), settings) is None


def test_events_fan_out_to_their_own_keys_webhooks_only(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'hooks.db'}"
    migrate(db)
    alice, bob = (create_key(db, name)["key_id"] for name in ("alice", "bob"))
    with session_scope(db) as session:
        mine = webhooks.register(session, alice, "http://127.0.0.1:9/", ["proof.ready"], True)
        webhooks.register(session, bob, "http://127.0.0.1:9/", list(webhooks.EVENT_TYPES), True)
        assert mine["secret"].startswith("whsec_")
    with session_scope(db) as session:
        job = jobs.new_job(session, "prove", "p" * 64, alice, {})
        job.state = "succeeded"
        jobs.announce(session, job, "job.succeeded")
    with session_scope(db) as session:
        rows = session.query(WebhookDelivery).all()
        assert [(r.webhook_id, r.type) for r in rows] == [(mine["webhook_id"], "proof.ready")]
        assert rows[0].payload["data"]["job_id"] == job.id
    with session_scope(db) as session:
        page = webhooks.list_deliveries(session, alice, mine["webhook_id"], 20, None)
        assert [d["state"] for d in page["items"]] == ["pending"]
        with pytest.raises(NotFoundError):  # another key's webhook is not found
            webhooks.list_deliveries(session, bob, mine["webhook_id"], 20, None)
