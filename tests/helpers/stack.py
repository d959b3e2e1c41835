"""A real service for tests: a private Redis, worker subprocesses, the API over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
import redis

from helpers.files import write_json
from prover.chain.node import ANVIL_DEV_KEY, LocalChain, free_port
from prover.client import Client
from prover.service.db import engine_for, migrate
from prover.service.keys import create_key
from prover.stack import WEBHOOK_WORKER, redis_answers, wait_until

POSTGRES_ADMIN = os.environ.get("PROVER_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/test")
T = TypeVar("T")


@contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of our own on a free port (else the one at 6379, database 15)."""
    binary = shutil.which("redis-server")
    if binary is None:
        url = "redis://127.0.0.1:6379/15"
        redis.Redis.from_url(url).flushdb()
        yield url
        return
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until(lambda: redis_answers(url), 10, "redis-server")
        yield url
    finally:
        process.terminate()
        process.wait()


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test session, dropped afterwards."""
    name = f"prover_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_ADMIN}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = POSTGRES_ADMIN.rsplit("/", 1)[0]
        url = f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
        try:
            yield url
        finally:
            engine_for(url).dispose()
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Service:
    """Workers (and the worker of webhook deliveries, ``webhooks``) and the API as
    subprocesses over one data dir, database and Redis."""

    def __init__(self, data_dir: Path, db_url: str, redis_url: str, **env: str) -> None:
        self.data_dir, self.db_url, self.redis_url = data_dir, db_url, redis_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PROVER_DATA_DIR": str(data_dir),
            "PROVER_DATABASE_URL": db_url,
            "PROVER_REDIS_URL": redis_url,
            "PROVER_API_PORT": str(self.port),
            "PROVER_API_URL": self.url,
            "PROVER_MEASURE_TOP": "1",
            "PROVER_JOB_LEASE_S": "2",
            "PROVER_MAX_REQUEST_BYTES": str(1 << 20),
            "PROVER_MAX_MODEL_BYTES": str(2 << 20),
            **env,
        }
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.api: subprocess.Popen[bytes] | None = None
        (data_dir / "logs").mkdir(parents=True, exist_ok=True)
        migrate(db_url)

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.data_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115
        return subprocess.Popen(
            [sys.executable, "-m", "prover", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_worker(self, name: str) -> None:
        self.workers[name] = self._spawn(name, "worker", "--name", f"{name}@test")

    def kill_worker(self, name: str) -> None:
        """SIGKILL a worker's whole process group, as when its machine dies."""
        process = self.workers.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def start(self, workers: int = 2) -> Service:
        for i in range(workers):
            self.start_worker(f"w{i + 1}")
        self.workers["webhooks"] = self._spawn(
            "webhooks", *WEBHOOK_WORKER, "--name", "webhooks@test"
        )
        self.api = self._spawn("api", "serve")
        wait_until(self._healthy, 90, "the API with its workers")
        return self

    def start_api(self) -> Service:
        """The API alone, once it answers HTTP (its health may say a part is down)."""
        self.api = self._spawn("api", "serve")
        wait_until(self._answers, 60, "the API")
        return self

    def _answers(self) -> bool:
        try:
            httpx.get(f"{self.url}/health", timeout=5)
        except httpx.HTTPError:
            return False
        return True

    def _healthy(self) -> bool:
        try:
            health = httpx.get(f"{self.url}/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return False
        return health.get("status") == "ok" and health.get("workers", 0) >= len(self.workers)

    def key(self, name: str = "test") -> str:
        return create_key(self.db_url, name)["key"]

    def client(self, key: str | None) -> httpx.Client:
        """Raw HTTP, for tests of status codes and error shapes."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def connect(self, key: str | None) -> Client:
        """The package's own client (``prover --remote``), for the happy paths."""
        return Client(self.url, key, timeout=60)

    def log(self, name: str) -> str:
        return (self.data_dir / "logs" / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for process in [*self.workers.values(), *([self.api] if self.api else [])]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in [*self.workers.values(), *([self.api] if self.api else [])]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def running_service(
    data: Path,
    workers: int = 2,
    chain: bool = False,
    database: str = "sqlite",
    env: dict[str, str] | None = None,
) -> Iterator[Service]:
    """The one way tests start the service: a private Redis, a fresh database (SQLite in
    ``data`` or a PostgreSQL one), an anvil node of its own when ``chain``, ``workers``
    workers and the API (``env`` added to theirs); stopped afterwards."""
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(private_redis())
        db_url = (
            stack.enter_context(postgres_database())
            if database == "postgresql"
            else f"sqlite:///{data / 'prover.db'}"
        )
        if chain:
            node = stack.enter_context(LocalChain())
            env = {
                "PROVER_RPC_URL": node.rpc_url,
                "PROVER_PRIVATE_KEY": ANVIL_DEV_KEY,
                **(env or {}),
            }
        service = Service(data, db_url, redis_url, **(env or {}))
        stack.callback(service.stop)
        yield service.start(workers)


def compile_model(
    api: Client, model: Path, calibration: object | None = None, **form: Any
) -> dict[str, Any]:
    """Upload a model (calibration written beside it) and wait for its compile to succeed;
    returns the upload's answer (circuit and job ids)."""
    cal = None if calibration is None else write_json(model.with_suffix(".cal.json"), calibration)
    accepted = api.submit_model(model, cal, **form)
    api.wait(accepted["job_id"], timeout=900)
    return accepted


def poll(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.05) -> T:
    """Call ``check`` until it returns something truthy (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(every)
    return value


def wait_job(client: httpx.Client, job_id: str, timeout: float = 300) -> dict:
    """Long-poll a job until it ends, failed or not (``Client.wait`` raises on failure);
    returns its final view."""

    def ended() -> dict | None:
        job = client.get(f"/v1/jobs/{job_id}", params={"wait": 10}).json()
        return job if job["state"] in ("succeeded", "failed") else None

    return poll(ended, timeout, f"the end of job {job_id}", every=0)


def overlapped(jobs: list[dict]) -> bool:
    """Whether the jobs ran at the same time (each started before every other ended)."""
    return max(j["started_at"] for j in jobs) < min(j["finished_at"] for j in jobs)


class Up:
    """`prover up ARGS` as a subprocess on private ports, data dir and Redis (``env`` adds
    or, with None, removes variables)."""

    def __init__(self, data: Path, args: list[str], env: dict[str, str | None]) -> None:
        self.data = data
        port = free_port()
        self.api = f"http://127.0.0.1:{port}"
        self.redis_url = f"redis://127.0.0.1:{free_port()}/0"  # none there: `up` starts one
        self.rpc_url = f"http://127.0.0.1:{free_port()}"  # likewise anvil
        merged: dict[str, str | None] = {
            **os.environ,
            "PROVER_DATA_DIR": str(data),
            "PROVER_DATABASE_URL": f"sqlite:///{data / 'prover.db'}",
            "PROVER_REDIS_URL": self.redis_url,
            "PROVER_RPC_URL": self.rpc_url,
            "PROVER_API_PORT": str(port),
            "PROVER_MEASURE_TOP": "1",
            **env,
        }
        self.out = open(data / "up.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "prover", "up", *args],
            env={k: v for k, v in merged.items() if v is not None},
            stdout=self.out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return (self.data / "up.log").read_text(errors="replace")

    def pids(self) -> dict[str, int]:
        return dict(json.loads((self.data / "stack.json").read_text()))

    def health(self) -> dict:
        return dict(httpx.get(f"{self.api}/health", timeout=5).json())

    def client(self, key: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.Client(base_url=self.api, headers=headers, timeout=60)


@contextmanager
def running_up(
    data: Path, args: list[str], env: dict[str, str | None], timeout: float
) -> Iterator[Up]:
    """An ``Up`` until it says ready; killed with its parts after."""
    stack = Up(data, args, env)
    try:
        wait_until(lambda: "ready" in stack.log(), timeout, f"`prover up`: {stack.log()}")
        yield stack
    finally:
        if stack.process.poll() is None:
            os.killpg(stack.process.pid, signal.SIGKILL)  # its parts die with it
            stack.process.wait()
        stack.out.close()
