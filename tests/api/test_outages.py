"""A broker or database outage on a request's path: Redis, a private one, killed while the
API uses it; a database that cannot be opened. No request is answered a plain-text 500: a
long-poll goes on by polling the database, and an outage nothing falls back from is 503
``unavailable`` naming the part."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
import sqlalchemy
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from helpers.stack import private_redis
from prover.config import Settings
from prover.service.db import session_scope
from prover.service.tables import Job

Upload = Callable[..., httpx.Response]  # the ``upload`` fixture

# Without the binary, private_redis() lends the machine's shared Redis: never kill that.
pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server for a Redis to kill"
)


@pytest.fixture
def api_settings(tmp_path: Path) -> Iterator[Settings]:
    """The API fixtures' settings, on a Redis of the test's own."""
    with private_redis() as url:
        yield Settings(
            data_dir=tmp_path / "data",
            database_url=f"sqlite:///{tmp_path / 'prover.db'}",
            redis_url=url,
            measure_top=1,
        )


def kill_redis(url: str) -> None:
    """SIGKILL the Redis server at ``url``, as when its machine dies."""
    pid = redis.Redis.from_url(url).info("server")["process_id"]
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)  # the kernel closes its sockets: the API's connections see it


def finish(settings: Settings, job_id: str) -> None:
    """The job succeeds, as a worker's commit (its wake-up goes nowhere: Redis is gone)."""
    with session_scope(settings.sqlalchemy_url()) as session:
        job = session.scalar(select(Job).where(Job.id == job_id))
        assert job is not None
        job.state, job.result = "succeeded", {"done": True}


def test_a_long_poll_outlives_redis_and_sees_the_jobs_end(
    alice: TestClient, upload: Upload, api_settings: Settings
) -> None:
    job_id = upload(alice).json()["job_id"]
    alice.get(f"/v1/jobs/{job_id}", params={"wait": 0.2})  # subscribed and answered: Redis up
    killer = threading.Timer(0.5, kill_redis, [api_settings.redis_url])
    finisher = threading.Timer(2.0, finish, [api_settings, job_id])
    killer.start()
    finisher.start()
    started = time.monotonic()
    answer = alice.get(f"/v1/jobs/{job_id}", params={"wait": 20})
    waited = time.monotonic() - started
    killer.join()
    finisher.join()
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "succeeded" and answer.json()["result"] == {"done": True}
    assert 2.0 <= waited < 5, f"the end seen by polling after {waited:.2f} s"
    assert alice.get(f"/v1/jobs/{job_id}", params={"wait": 1}).json()["state"] == "succeeded"


def test_a_redis_error_nothing_falls_back_from_is_503_unavailable(
    app: FastAPI, client: TestClient, api_settings: Settings
) -> None:
    @app.get("/test/broker")
    def broker_call() -> bool:
        """A route that reaches Redis and has no fallback."""
        return bool(redis.Redis.from_url(api_settings.redis_url).ping())

    assert client.get("/test/broker").json() is True
    kill_redis(api_settings.redis_url)
    answer = client.get("/test/broker")
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == {
        "code": "unavailable",
        "message": "the broker (Redis) does not answer; try again later",
    }


def test_a_database_that_does_not_answer_is_503_unavailable(
    app: FastAPI, client: TestClient, tmp_path: Path
) -> None:
    @app.get("/test/database")
    def database_call() -> int:
        """A route whose database cannot be opened (its directory is gone)."""
        engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'gone' / 'prover.db'}")
        with engine.connect() as connection:
            return int(connection.execute(sqlalchemy.text("select 1")).scalar_one())

    answer = client.get("/test/database")
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == {
        "code": "unavailable",
        "message": "the database does not answer; try again later",
    }
