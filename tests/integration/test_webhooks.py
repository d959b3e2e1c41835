"""Webhooks through a real stack (a worker, the webhooks worker, the API over HTTP) to a
real receiver: deliveries are signed with the webhook's secret, reach the key's own
endpoints only, and a receiver that was down gets every event once it is back, each
retry under the same ``webhook-id``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.models import calibration_data, make_mlp
from helpers.receiver import Receiver
from helpers.stack import Service, compile_model, poll, running_service
from prover.client import Client
from prover.service.webhooks import EVENT_TYPES
from prover.webhook_signature import verify_signature

pytestmark = pytest.mark.slow

FAST_RETRIES = {
    "PROVER_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on 127.0.0.1
    "PROVER_WEBHOOK_RETRY_BASE_S": "0.2",
    "PROVER_WEBHOOK_RETRY_MAX_S": "1",
    "PROVER_WEBHOOK_POLL_S": "0.1",
}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("webhooks"), 1, env=FAST_RETRIES) as svc:
        yield svc


@pytest.fixture(scope="module")
def circuit(service: Service, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A key and its compiled circuit."""
    key = service.key("alice")
    model = make_mlp(tmp_path_factory.mktemp("model") / "mlp.onnx")
    with service.connect(key) as api:
        compiled = compile_model(api, model, calibration_data(), strategy="ezkl-default")
    return key, compiled["circuit_id"]


def delivered_pairs(receiver: Receiver) -> set[tuple[str, str]]:
    """(job id, type) of each event the receiver accepted."""
    return {(r.payload["data"]["job_id"], r.payload["type"]) for r in receiver.delivered()}


def test_deliveries_are_signed_and_reach_only_their_key(
    service: Service, circuit: tuple[str, str]
) -> None:
    alice, circuit_id = circuit
    bob = service.key("bob")
    with (
        Receiver() as mine,
        Receiver() as theirs,
        service.connect(alice) as api,
        service.connect(bob) as bobs,
    ):
        hook = api.register_webhook(mine.url, ["job.succeeded", "proof.ready"])
        bobs.register_webhook(theirs.url, list(EVENT_TYPES))  # everything of bob's
        asked = api.request_proof(circuit_id, [[0.5, -1.0, 0.25, 2.0]], fresh=True)
        job = api.wait(asked["job_id"], timeout=300)
        expected = {(job["job_id"], "job.succeeded"), (job["job_id"], "proof.ready")}
        poll(lambda: delivered_pairs(mine) >= expected, 30, "both deliveries")
        deliveries = api.webhook_deliveries(hook["webhook_id"])["items"]

    assert delivered_pairs(mine) == expected  # nothing it did not subscribe to
    for received in mine.received:
        event = verify_signature(hook["secret"], received.headers, received.body)
        assert event["id"] == received.message_id and event["data"]["job_id"] == job["job_id"]
        assert received.headers["content-type"] == "application/json"
    assert len({r.message_id for r in mine.received}) == len(mine.received) == 2
    assert {d["delivery_id"] for d in deliveries} == {r.message_id for r in mine.received}
    for delivery in deliveries:
        assert delivery["state"] == "delivered" and delivery["delivered_at"]
        assert [a["status"] for a in delivery["attempts"]] == [200]
    assert theirs.received == []  # alice's events never reach bob's endpoint


def test_a_receiver_down_for_a_while_gets_every_event_once_back(
    service: Service, circuit: tuple[str, str]
) -> None:
    alice, circuit_id = circuit
    types = ["job.queued", "job.running", "job.succeeded", "proof.ready"]
    with Receiver() as receiver, service.connect(alice) as api:
        receiver.status = 503
        hook = api.register_webhook(receiver.url, types)
        job_ids = []
        for i in range(2):
            asked = api.request_proof(circuit_id, [[i / 3, 0.5, -0.25, 1.0]], fresh=True)
            job_ids.append(asked["job_id"])
        for job_id in job_ids:
            api.wait(job_id, timeout=300)
        expected = {(job_id, t) for job_id in job_ids for t in types}
        # Down: every event is tried (and tried again) before the receiver is back.
        pending = poll(lambda: all_tried(api, hook["webhook_id"], len(expected)), 30, "tries")
        receiver.status = 200
        poll(lambda: delivered_pairs(receiver) >= expected, 30, "every event once back")
        poll(lambda: all_delivered(api, hook["webhook_id"]), 10, "deliveries recorded")
        deliveries = api.webhook_deliveries(hook["webhook_id"])["items"]

    assert len(pending) == len(expected) and {d["state"] for d in pending} == {"pending"}
    assert all(a["status"] == 503 for d in pending for a in d["attempts"])
    assert all(d["next_attempt_at"] for d in pending)
    assert delivered_pairs(receiver) == expected
    # A retry carries the id of its first attempt: a receiver deduplicates by it.
    by_id = {r.message_id: (r.payload["event_id"], r.payload["type"]) for r in receiver.received}
    assert len(by_id) == len(expected) == len(set(by_id.values()))
    attempts = Counter(r.message_id for r in receiver.received)
    assert min(attempts.values()) >= 2, attempts  # refused at least once, then accepted
    accepted = Counter(r.message_id for r in receiver.delivered())
    assert set(accepted) == set(by_id)
    for delivery in deliveries:
        statuses = [a["status"] for a in delivery["attempts"]]
        assert statuses[-1] == 200 and set(statuses[:-1]) == {503}, statuses
        assert statuses.count(503) == attempts[delivery["delivery_id"]] - 1


def all_tried(api: Client, webhook_id: str, count: int) -> list[dict[str, Any]] | None:
    """The webhook's ``count`` deliveries once each has been attempted, else None."""
    items: list[dict[str, Any]] = api.webhook_deliveries(webhook_id)["items"]
    return items if len(items) == count and all(d["attempts"] for d in items) else None


def all_delivered(api: Client, webhook_id: str) -> bool:
    items = api.webhook_deliveries(webhook_id)["items"]
    return all(d["state"] == "delivered" for d in items)


def test_a_private_address_is_refused_in_production_mode(tmp_path: Path) -> None:
    """A production stack (PROVER_WEBHOOK_ALLOW_PRIVATE unset) refuses the receiver the
    other tests use, on 127.0.0.1."""
    production = {"PROVER_ENV": "production", "PROVER_PRIVATE_KEY": "0x" + "1" * 64}
    with (
        running_service(tmp_path, 0, env=production) as plain,
        Receiver() as receiver,
        plain.client(plain.key()) as http,
    ):
        refused = http.post("/v1/webhooks", json={"url": receiver.url, "events": ["job.failed"]})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["reason"] == "loopback"
