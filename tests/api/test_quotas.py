"""Quotas per key: jobs in flight and requests per second, answered 429 with Retry-After
(and only for the key over its quota)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from prover.api.app import create_app
from prover.config import Settings
from prover.service.db import session_scope
from prover.service.keys import create_key
from prover.service.tables import Job

Upload = Callable[..., httpx.Response]  # the ``upload`` fixture


@pytest.fixture
def api_settings(tmp_path: Path) -> Settings:
    """Two jobs in flight per key, no rate limit (the rate tests make their own apps)."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'prover.db'}",
        redis_url="redis://127.0.0.1:1/0",
        max_jobs_in_flight=2,
        rate_limit_per_s=0,
    )


def assert_429(response: httpx.Response, code: str) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == code
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"]["retry_after_s"] == int(response.headers["retry-after"])


def test_jobs_in_flight_past_the_quota_are_429(
    alice: TestClient, bob: TestClient, upload: Upload, api_settings: Settings
) -> None:
    first = upload(alice, tolerance="0.1")
    assert first.status_code == 202
    second = upload(alice, tolerance="0.2")
    assert second.status_code == 202, second.text
    refused = upload(alice, tolerance="0.3")
    assert_429(refused, "quota_exceeded")
    assert "PROVER_MAX_JOBS_IN_FLIGHT" in refused.json()["error"]["message"]
    assert alice.post("/v1/circuits/c/proofs", json={"input": [[1]]}).status_code == 429
    assert alice.get("/v1/jobs").status_code == 200, "reads are not submissions"
    assert upload(bob, tolerance="0.3").status_code == 202, "another key's quota is its own"

    with session_scope(api_settings.sqlalchemy_url()) as session:
        job = session.scalar(select(Job).where(Job.id == first.json()["job_id"]))
        assert job is not None
        job.state = "succeeded"
    assert upload(alice, tolerance="0.3").status_code == 202, "a job ended: room again"


def limited_client(tmp_path: Path, redis_url: str, per_s: float, burst: int) -> TestClient:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'prover.db'}",
        redis_url=redis_url,
        rate_limit_per_s=per_s,
        rate_limit_burst=burst,
    )
    return TestClient(create_app(settings))


def keyed(client: TestClient, tmp_path: Path, name: str) -> dict[str, str]:
    key = create_key(f"sqlite:///{tmp_path / 'prover.db'}", name)["key"]
    return {"Authorization": f"Bearer {key}"}


def test_requests_past_the_rate_are_429(tmp_path: Path) -> None:
    """Without Redis, each process keeps the bucket itself."""
    with limited_client(tmp_path, "redis://127.0.0.1:1/0", per_s=0.5, burst=3) as client:
        alice, bob = keyed(client, tmp_path, "alice"), keyed(client, tmp_path, "bob")
        for _ in range(3):
            assert client.get("/v1/jobs", headers=alice).status_code == 200
        refused = client.get("/v1/jobs", headers=alice)
        assert_429(refused, "rate_limited")
        assert int(refused.headers["retry-after"]) == 2  # one request per 2 s
        assert client.get("/v1/jobs", headers=bob).status_code == 200
        assert client.get("/health").status_code != 429, "no key, no rate"


@pytest.mark.slow
def test_the_rate_is_shared_by_api_processes_through_redis(tmp_path: Path) -> None:
    from helpers.stack import private_redis

    with private_redis() as redis_url:
        one = limited_client(tmp_path / "a", redis_url, per_s=1, burst=4)
        with one, limited_client(tmp_path / "a", redis_url, per_s=1, burst=4) as two:
            alice = keyed(one, tmp_path / "a", "alice")
            for client in (one, two, one, two):
                assert client.get("/v1/jobs", headers=alice).status_code == 200
            assert_429(two.get("/v1/jobs", headers=alice), "rate_limited")
            assert_429(one.get("/v1/jobs", headers=alice), "rate_limited")
            bob = keyed(one, tmp_path / "a", "bob")
            assert two.get("/v1/jobs", headers=bob).status_code == 200
