"""Hosts for tests, as Linux network namespaces: the service spread over machines that share
nothing but the network.

The layout (``Hosts``):

* a bridge in the root namespace with a private /24 (``10.231.N.0/24``, N picked per run
  among those no interface of this machine has): the root namespace is the *server host*
  at ``.1``, where Redis, PostgreSQL (the machine's, forwarded by socat from the bridge
  address), SeaweedFS and the API listen on that address only, so a worker host reaches
  them by the network alone, and the test itself (in the root namespace) talks HTTP to
  the API there;
* one network namespace per *worker host* (``.11``, ``.12``, ...), joined to the bridge by
  a veth pair (``eth0`` inside), each with its own directory (data dir, ``HOME``,
  ``TMPDIR``, logs) and no path in common with another host; its workers run under
  ``ip netns exec``. Cutting a host off is ``ip link set eth0 down`` in its namespace.

Names carry a per-run tag, and everything (processes, namespaces, the bridge) goes in a
``finally``, failed test or not. Every wait has a deadline. Tests call ``require_netns``
first: it skips, saying why, when not root or when namespaces cannot be made here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers.seaweed import Seaweed, weed_binary
from helpers.stack import POSTGRES_ADMIN, postgres_database
from prover.chain.node import free_port
from prover.client import Client
from prover.service.db import migrate
from prover.service.keys import create_key
from prover.stack import redis_answers, wait_until

COMMAND_TIMEOUT_S = 20.0
METRICS_PORT = 9464  # each worker's Prometheus endpoint, on its host's own network


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """One ``ip`` command, bounded in time."""
    return subprocess.run(
        ["ip", *args], capture_output=True, text=True, check=check, timeout=COMMAND_TIMEOUT_S
    )


def require_netns() -> None:
    """Skip the calling test, saying why, unless this process may build namespaces."""
    if sys.platform != "linux":
        pytest.skip("hosts as network namespaces need Linux")
    if os.geteuid() != 0:
        pytest.skip("hosts as network namespaces need root (ip netns, veth, a bridge)")
    for tool in ("ip", "socat", "redis-server"):
        if shutil.which(tool) is None:
            pytest.skip(f"hosts as network namespaces need {tool!r} on PATH")
    if weed_binary() is None:
        pytest.skip("SeaweedFS's weed binary is missing (scripts/setup.sh installs it)")
    probe = f"prover-probe-{uuid.uuid4().hex[:8]}"
    try:
        made = _ip("netns", "add", probe, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"`ip netns add` failed here: {exc}")
    try:
        if made.returncode != 0:
            pytest.skip(f"`ip netns add` failed here: {made.stderr.strip()}")
        inside = subprocess.run(
            ["ip", "netns", "exec", probe, "ip", "link", "set", "lo", "up"],
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
        )  # fmt: skip
        if inside.returncode != 0:
            pytest.skip(f"`ip netns exec` failed here: {inside.stderr.strip()}")
    finally:
        _ip("netns", "del", probe, check=False)


def _free_subnet() -> ipaddress.IPv4Network:
    """A 10.231.N.0/24 that no interface here uses (another run's bridge included)."""
    used = _ip("-4", "-o", "addr", "show").stdout
    start = os.getpid() % 200
    for n in (*range(start + 20, 250), *range(20, start + 20)):
        net = ipaddress.IPv4Network(f"10.231.{n}.0/24")
        if f" 10.231.{n}." not in used:
            return net
    raise RuntimeError("no free 10.231.N.0/24 for the test hosts")


@dataclass
class Host:
    """One machine: a namespace (None: the root namespace, the server host), its address
    and a directory of its own."""

    name: str
    address: str
    directory: Path
    netns: str | None = None

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    def prefix(self) -> list[str]:
        """What runs a command on this host."""
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    def set_link(self, up: bool) -> None:
        """Plug or unplug this host's network cable (its ``eth0``)."""
        assert self.netns is not None, "the server host is not cut off"
        _ip("-n", self.netns, "link", "set", "eth0", "up" if up else "down")

    def reaches(self, address: str, port: int) -> bool:
        """Whether a TCP connection from this host to ``address:port`` opens."""
        probe = f"import socket; socket.create_connection(({address!r}, {port}), timeout=2)"
        try:
            done = subprocess.run(
                [*self.prefix(), sys.executable, "-c", probe],
                capture_output=True, timeout=COMMAND_TIMEOUT_S,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0


@dataclass
class Network:
    """A bridge with the root namespace on it as the server host, and worker hosts."""

    root: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    hosts: dict[str, Host] = field(default_factory=dict)
    subnet: ipaddress.IPv4Network | None = None

    @property
    def bridge(self) -> str:
        return f"pvbr{self.tag}"

    def build(self, workers: int) -> Host:
        """The bridge, the server host and ``workers`` worker hosts; the server host."""
        self.subnet = _free_subnet()
        base = self.subnet.network_address
        server = Host("server", str(base + 1), self.root / "server")
        self.hosts["server"] = server
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{server.address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i in range(1, workers + 1):
            name = f"h{i}"
            host = Host(name, str(base + 10 + i), self.root / name, f"prover-{self.tag}-{name}")
            self.hosts[name] = host
            outside, inside = f"pv{self.tag}{name}", f"pv{self.tag}{name}i"
            _ip("netns", "add", host.netns or "")
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", outside, "master", self.bridge)
            _ip("link", "set", outside, "up")
            _ip("link", "set", inside, "netns", host.netns or "")
            ns = ["-n", host.netns or ""]
            _ip(*ns, "link", "set", inside, "name", "eth0")
            _ip(*ns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            _ip(*ns, "link", "set", "eth0", "up")
            _ip(*ns, "link", "set", "lo", "up")
        for host in self.hosts.values():
            for sub in ("data", "home", "tmp", "logs"):
                (host.directory / sub).mkdir(parents=True, exist_ok=True)
        return server

    def tear_down(self) -> None:
        for host in self.hosts.values():
            if host.netns:
                _ip("netns", "del", host.netns, check=False)
        _ip("link", "del", self.bridge, check=False)


def _stop(process: subprocess.Popen[bytes], grace_s: float = 15) -> None:
    """SIGTERM a process group, SIGKILL it after ``grace_s``."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace_s)


@dataclass
class Hosts:
    """The service over hosts: Redis, PostgreSQL, SeaweedFS and the API on the server
    host, workers started on worker hosts with ``start_worker``."""

    network: Network
    server: Host
    redis_url: str
    db_url: str
    seaweed: Seaweed
    store_url: str
    settings: dict[str, str]
    api_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.server.address}:{self.api_port}"

    def host(self, name: str) -> Host:
        return self.network.hosts[name]

    def env(self, host: Host) -> dict[str, str]:
        """A process's environment on ``host``: the same service settings everywhere, a
        directory of the host's own."""
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("PROVER_", "AWS_"))}
        return {
            **keep,
            **self.seaweed.environment(),
            "HOME": str(host.directory / "home"),
            "TMPDIR": str(host.directory / "tmp"),
            "PROVER_DATA_DIR": str(host.data_dir),
            "PROVER_DATABASE_URL": self.db_url,
            "PROVER_REDIS_URL": self.redis_url,
            "PROVER_STORE_URL": self.store_url,
            "PROVER_API_HOST": self.server.address,
            "PROVER_API_PORT": str(self.api_port),
            "PROVER_API_URL": self.url,
            # A worker says where it is, and serves its metrics there (each host its own
            # network, so one port for all).
            "PROVER_WORKER_ADDRESS": host.address,
            "PROVER_WORKER_METRICS_PORT": str(METRICS_PORT),
            **self.settings,
        }

    def spawn(self, label: str, host: Host, *args: str) -> subprocess.Popen[bytes]:
        assert label not in self.processes, f"{label} is running already"
        log = open(host.directory / "logs" / f"{label}.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            [*host.prefix(), sys.executable, "-m", "prover", *args],
            env=self.env(host),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes[label] = process
        return process

    def start_worker(self, host_name: str, queues: str = "compile,prove") -> str:
        """A worker on a worker host, consuming ``queues``; its node name."""
        node = f"{host_name}@hosts"
        self.spawn(host_name, self.host(host_name), "worker", "--name", node, "--queues", queues)
        return node

    def stop_worker(self, host_name: str) -> None:
        _stop(self.processes.pop(host_name))

    def start_api(self) -> None:
        self.spawn("api", self.server, "serve")
        wait_until(self._answers, 60, "the API on the server host")

    def health(self) -> dict[str, Any]:
        """The API's /health, as it answers now (``{}`` while it does not)."""
        try:
            return dict(httpx.get(f"{self.url}/health", timeout=5).json())
        except (httpx.HTTPError, ValueError):
            return {}

    def _answers(self) -> bool:
        return bool(self.health())

    def wait_workers(self, count: int, timeout_s: float = 90) -> None:
        """Until the API's health counts ``count`` workers and says ok."""

        def ready() -> bool:
            health = self.health()
            return health.get("status") == "ok" and health.get("workers", 0) >= count

        wait_until(ready, timeout_s, f"{count} workers on the worker hosts")

    def key(self, name: str) -> str:
        return create_key(self.db_url, name)["key"]

    def connect(self, key: str) -> Client:
        return Client(self.url, key, timeout=60)

    def http(self, key: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )

    def stored(self, kind: str, entry_id: str) -> bool:
        """Whether the object store holds the entry (its record, written last)."""
        client = self.seaweed.client()
        prefix = self.store_url.removeprefix("s3://prover/")
        try:
            client.head_object(Bucket="prover", Key=f"{prefix}/{kind}/{entry_id}/record.json")
        except client.exceptions.ClientError:
            return False
        return True

    def log(self, label: str) -> str:
        host = self.server if label == "api" else self.host(label)
        return (host.directory / "logs" / f"{label}.log").read_text(errors="replace")

    def stop(self) -> None:
        for label in list(self.processes):
            _stop(self.processes.pop(label))


@contextmanager
def _server_process(
    args: list[str], what: str, ready: Callable[[], bool], timeout_s: float = 30
) -> Iterator[None]:
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_until(lambda: process.poll() is None and ready(), timeout_s, what)
        yield
    finally:
        _stop(process, grace_s=10)


def _listens(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=2).close()
    except OSError:
        return False
    return True


@contextmanager
def running_hosts(root: Path, workers: int = 2, **settings: str) -> Iterator[Hosts]:
    """The server host (Redis, PostgreSQL, SeaweedFS, the API) and ``workers`` worker hosts
    (none of their workers started); everything torn down afterwards. ``settings`` are
    ``PROVER_*`` variables for every process."""
    require_netns()
    network = Network(root)
    with contextlib.ExitStack() as stack:
        stack.callback(network.tear_down)
        server = network.build(workers)
        address = server.address
        # Redis on the bridge address only.
        redis_port = free_port()
        redis_url = f"redis://{address}:{redis_port}/0"
        stack.enter_context(
            _server_process(
                ["redis-server", "--port", str(redis_port), "--bind", address,
                 "--protected-mode", "no", "--save", "", "--appendonly", "no"],
                "redis-server on the server host", lambda: redis_answers(redis_url),
            )
        )  # fmt: skip
        # PostgreSQL: a fresh database on the machine's server, forwarded to the bridge.
        local_db = stack.enter_context(postgres_database())
        pg_port = free_port()
        admin_host = POSTGRES_ADMIN.split("@", 1)[1].split("/", 1)[0]
        stack.enter_context(
            _server_process(
                ["socat", f"TCP-LISTEN:{pg_port},bind={address},reuseaddr,fork",
                 f"TCP:{admin_host}"],
                "socat in front of PostgreSQL", lambda: _listens(address, pg_port),
            )
        )  # fmt: skip
        db_url = local_db.replace(f"@{admin_host}/", f"@{address}:{pg_port}/")
        migrate(db_url)
        # SeaweedFS on the bridge address.
        binary = weed_binary()
        assert binary is not None
        seaweed = Seaweed(server.directory / "seaweed", binary, ip=address)
        seaweed.directory.mkdir(parents=True)
        stack.callback(seaweed.stop)
        seaweed.start()
        defaults = {
            "PROVER_MEASURE_TOP": "1",
            "PROVER_JOB_LEASE_S": "2",
            "PROVER_TRANSIENT_BACKOFF_S": "0.5",
            "PROVER_TRANSIENT_BACKOFF_MAX_S": "2",
            "PROVER_REQUEUE_AFTER_S": "5",
            "PROVER_CHILD_POLL_S": "2",
            "PROVER_MAX_REQUEST_BYTES": str(1 << 20),
            "PROVER_MAX_MODEL_BYTES": str(2 << 20),
            "PROVER_RPC_URL": f"http://{address}:{free_port()}",  # no chain: none is used
        }
        hosts = Hosts(
            network, server, redis_url, db_url, seaweed,
            f"s3://prover/hosts-{network.tag}", {**defaults, **settings},
        )  # fmt: skip
        stack.callback(hosts.stop)
        pg_local_port = int(admin_host.rsplit(":", 1)[1])
        for host in network.hosts.values():
            if host.netns:
                assert host.reaches(address, redis_port), f"{host.name} cannot reach Redis"
                # Its loopback is its own: the server host's services only by the network.
                assert not host.reaches("127.0.0.1", pg_local_port), f"{host.name} not isolated"
        hosts.start_api()
        yield hosts
