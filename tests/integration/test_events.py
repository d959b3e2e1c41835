"""The event stream (GET /v1/events) over real HTTP, with a real worker: a key sees its own
jobs' changes as they are committed, in order, and no other key's; a client that comes
back resumes after the last event it saw and misses none."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers.models import calibration_data, make_mlp
from helpers.stack import Service, compile_model, running_service

pytestmark = pytest.mark.slow

Event = dict[str, Any]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("events"), 1) as svc:
        yield svc


def read_events(
    service: Service,
    key: str,
    until: Callable[[list[Event]], bool],
    timeout_s: float,
    started: threading.Event | None = None,
    resume_after: int | None = None,
) -> list[Event]:
    """A stream's events (after event ``resume_after``, as a reconnecting client asks)
    until ``until`` holds of them or ``timeout_s`` has passed at a line (an event or a
    keep-alive), then the stream is closed; ``started`` is set once the stream is open."""
    seen: list[Event] = []
    deadline = time.monotonic() + timeout_s
    limits = httpx.Timeout(10, read=30)  # the server sends a keep-alive every 15 s
    headers = {} if resume_after is None else {"Last-Event-ID": str(resume_after)}
    auth = {"Authorization": f"Bearer {key}", **headers}
    with (
        httpx.Client(base_url=service.url, timeout=limits) as client,
        client.stream("GET", "/v1/events", headers=auth) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        if started is not None:
            started.set()
        for line in response.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
            if until(seen) or time.monotonic() > deadline:
                break
    return seen


def in_background(function: Callable[[], list[Event]]) -> tuple[threading.Thread, list[Event]]:
    out: list[Event] = []
    thread = threading.Thread(target=lambda: out.extend(function()), daemon=True)
    thread.start()
    return thread, out


def ended(job_ids: list[str]) -> Callable[[list[Event]], bool]:
    def check(events: list[Event]) -> bool:
        done = {e["subject_id"] for e in events if e["type"] in ("job.succeeded", "job.failed")}
        return set(job_ids) <= done

    return check


def test_a_key_follows_its_jobs_and_resumes_where_it_left(service: Service, tmp_path: Path) -> None:
    alice, bob = service.key("alice"), service.key("bob")
    job_ids: list[str] = []
    opened = threading.Event(), threading.Event()
    live, alices = in_background(
        lambda: read_events(
            service, alice, lambda e: ended(job_ids)(e) and bool(job_ids), 300, opened[0]
        )
    )
    other, bobs = in_background(lambda: read_events(service, bob, lambda e: False, 40, opened[1]))
    assert opened[0].wait(30) and opened[1].wait(30)
    with service.connect(alice) as api:
        compiled = compile_model(
            api, make_mlp(tmp_path / "mlp.onnx"), calibration_data(), strategy="ezkl-default"
        )
        asked = api.request_proof(compiled["circuit_id"], [[0.5, -1.0, 0.25, 2.0]])
        job_ids += [compiled["job_id"], asked["job_id"]]
        api.wait(asked["job_id"], timeout=300)
    live.join(60)
    other.join(90)

    assert bobs == [], bobs  # another key's jobs never reach this key's stream
    ids = [e["id"] for e in alices]
    assert ids == sorted(set(ids)), ids  # in order, each once
    for job_id in job_ids:
        types = [e["type"] for e in alices if e["subject_id"] == job_id]
        assert types[0] == "job.queued" and types[-1] == "job.succeeded", types
        assert "job.running" in types
        last = next(e for e in reversed(alices) if e["subject_id"] == job_id)
        assert last["data"]["state"] == "succeeded" and last["data"]["job_id"] == job_id
    assert any(e["type"] == "job.progress" for e in alices)  # phases, as they begin

    # Back after a disconnect: everything after the last event seen, and only that.
    cut = next(i for i, e in enumerate(alices) if e["subject_id"] == job_ids[1])
    before, after = alices[:cut], alices[cut:]
    enough = lambda e: len(e) >= len(after)  # noqa: E731
    resumed = read_events(service, alice, enough, 20, resume_after=before[-1]["id"])
    assert [e["id"] for e in resumed] == [e["id"] for e in after]
    # A new stream without an id starts at now: nothing old is sent again.
    assert read_events(service, alice, lambda e: bool(e), 3) == []
