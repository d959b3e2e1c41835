"""``prover up``: the whole service on one machine, starting only what is missing.

Redis is started when none answers at ``PROVER_REDIS_URL``, anvil when no chain answers at
``PROVER_RPC_URL``; then ``PROVER_WORKERS`` worker processes and the API. ``up`` then
supervises what it started: a part that exits is started again after a backoff (doubling
from 1 s to 30 s, back to 1 s once it has stayed up a minute), and the others keep
running; jobs of a dead worker are taken over once their leases lapse. Only Ctrl-C (or
SIGTERM) stops the stack: the API, the workers, then anvil and Redis, and only what was
started. ``DATA_DIR/stack.json`` names the process of each part, for operators and tests.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlparse

import httpx
import redis

from prover.config import Settings, mode_line
from prover.errors import ProverError, UnavailableError
from prover.service.db import migrate
from prover.service.lease import die_with_parent

RESTART_FIRST_S, RESTART_MAX_S, STABLE_S = 1.0, 30.0, 60.0
Starter = Callable[[], "subprocess.Popen[bytes] | None"]


@dataclass
class Part:
    name: str
    where: str
    process: subprocess.Popen[bytes] | None = None  # None: already running, not ours
    start: Starter | None = None  # how to start it again (ours only)
    restarts: int = 0  # in a row: reset once it stays up STABLE_S
    started_at: float = 0.0
    down_since: float | None = None

    def restart_delay(self) -> float:
        return min(RESTART_FIRST_S * 2**self.restarts, RESTART_MAX_S)


@dataclass
class Stack:
    settings: Settings
    say: Callable[[str], None]
    parts: list[Part] = field(default_factory=list)

    def _own(self, name: str, where: str, start: Starter) -> Part:
        """Start a part that ``up`` supervises."""
        part = Part(name, where, start(), start, started_at=time.monotonic())
        self.parts.append(part)
        self._note_processes()
        return part

    def _spawn(self, name: str, where: str, command: list[str], env: dict[str, str]) -> Part:
        def start() -> subprocess.Popen[bytes]:
            log = open(self.settings.data_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115
            with log:
                return subprocess.Popen(
                    command,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches `up`, which stops parts in order
                    preexec_fn=die_with_parent,
                )

        return self._own(name, where, start)

    def _note_processes(self) -> None:
        pids = {p.name: p.process.pid for p in self.parts if p.process is not None}
        (self.settings.data_dir / "stack.json").write_text(json.dumps(pids))

    def _redis(self, env: dict[str, str]) -> None:
        url = self.settings.redis_url
        if redis_answers(url):
            self.parts.append(Part("redis", f"{url} (already running)"))
            return
        binary = shutil.which("redis-server")
        if binary is None:
            raise UnavailableError(
                f"no Redis answers at {url} and redis-server is not installed: install it "
                "(apt-get install redis-server; `bash scripts/setup.sh` does) or point "
                "PROVER_REDIS_URL at a running Redis"
            )
        parsed = urlparse(url)
        port = str(parsed.port or 6379)
        command = [binary, "--port", port, "--bind", parsed.hostname or "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.settings.data_dir)]
        self._spawn("redis", url, command, env)
        wait_until(lambda: redis_answers(url), 20, f"Redis at {url}")

    def _chain(self) -> None:

        url = self.settings.rpc_url
        if chain_answers(url):
            self.parts.append(Part("chain", f"{url} (already running)"))
            return
        parsed = urlparse(url)
        if parsed.hostname not in ("127.0.0.1", "localhost"):
            raise UnavailableError(f"the chain at {url} does not answer")
        from prover.chain.node import LocalChain

        chain_id = LocalChain(port=parsed.port or 8545).chain_id  # not started yet
        self._own("chain", f"{url} (anvil, chain id {chain_id})", _anvil(parsed.port or 8545))

    def start(self) -> None:
        settings = self.settings
        self.say(mode_line(settings))
        (settings.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        metrics_dir = settings.data_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env = {
            **os.environ,
            **settings.environment(),  # every part runs with exactly these settings
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
        self._redis(env)
        self.say(f"redis    {self.parts[-1].where}")
        migrate(settings.sqlalchemy_url())
        self.say(f"database {settings.sqlalchemy_url()}")
        self._chain()
        self.say(f"chain    {self.parts[-1].where}")
        for i in range(settings.workers):
            name = f"worker{i + 1}"
            command = [sys.executable, "-m", "prover", "worker", "--name", f"{name}@%h"]
            self._spawn(name, "queues compile, prove, chain", command, env)
        self.say(f"workers  {settings.workers} (logs in {settings.data_dir / 'logs'})")
        api = f"http://{settings.api_host}:{settings.api_port}"
        command = [sys.executable, "-m", "prover", "serve"]
        self._spawn("api", api, command, env)
        wait_until(lambda: self._healthy(api), 120, f"the API at {api} (and a worker)")
        self.say(f"api      {api}  (docs {api}/docs, metrics {api}/metrics)")

    def _healthy(self, api: str) -> bool:
        for part in self.parts:
            if part.process is not None and part.process.poll() is not None:
                raise ProverError(
                    f"{part.name} exited with status {part.process.returncode}; see "
                    f"{self.settings.data_dir / 'logs' / (part.name + '.log')}"
                )
        try:
            return httpx.get(f"{api}/health", timeout=5).json().get("status") == "ok"
        except (httpx.HTTPError, ValueError):
            return False

    def stop(self) -> None:
        """Stop what was started, the API first and what the others need last."""
        for part in reversed(self.parts):
            process = part.process
            if process is None or process.poll() is not None:
                continue
            with_group = part.name.startswith("worker") or part.name == "api"
            _signal(process, signal.SIGTERM, with_group)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _signal(process, signal.SIGKILL, with_group)
                process.wait()
            self.say(f"stopped  {part.name}")
        (self.settings.data_dir / "stack.json").unlink(missing_ok=True)

    def watch(self, period: float = 0.5) -> None:
        """Supervise until the process is told to stop (KeyboardInterrupt)."""
        while True:
            for part in self.parts:
                self._tend(part, time.monotonic())
            time.sleep(period)

    def _tend(self, part: Part, now: float) -> None:
        """Start a dead part again once its backoff has passed; forget old restarts of a
        part that has stayed up."""
        process = part.process
        if part.start is None or process is None:
            return
        if process.poll() is None:
            if part.restarts and now - part.started_at > STABLE_S:
                part.restarts = 0
            return
        if part.down_since is None:
            part.down_since = now
            self.say(
                f"{part.name} exited with status {process.returncode}; starting it again in "
                f"{part.restart_delay():.0f} s (see {self.settings.data_dir / 'logs'})"
            )
        if now - part.down_since < part.restart_delay():
            return
        part.restarts += 1
        try:
            part.process = part.start() or process
        except Exception as exc:  # e.g. anvil's port still taken: back off further
            part.down_since = time.monotonic()
            self.say(f"{part.name} did not start again: {exc}")
            return
        part.started_at, part.down_since = time.monotonic(), None
        self._note_processes()
        self.say(f"restarted {part.name} (pid {part.process.pid})")


def _anvil(port: int) -> Starter:
    """Start anvil on ``port`` (a fresh development chain each time)."""

    def start() -> subprocess.Popen[bytes] | None:
        from prover.chain.node import LocalChain

        return LocalChain(port=port).start().process

    return start


def _signal(process: subprocess.Popen[bytes], sig: int, group: bool) -> None:
    try:
        if group:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
    except ProcessLookupError:
        pass


def redis_answers(url: str) -> bool:
    """Whether a Redis answers PING at ``url``."""
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def chain_answers(url: str) -> bool:
    """Whether an EVM JSON-RPC endpoint answers at ``url``."""
    try:
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        return "result" in httpx.post(url, json=body, timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return False


def wait_until(ready: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``ready`` until it holds; ``UnavailableError`` naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.25)
    raise UnavailableError(f"{what} did not answer within {timeout:.0f} s")
