"""A private SeaweedFS for tests: its own directory and free ports, an S3 bucket, stopped
after. Tests that need it skip, saying why, when the ``weed`` binary is missing."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from prover.stack import weed_binary

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

KEY = "prover-test"
SECRET = "prover-test-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Seaweed:
    """One ``weed server`` with S3; ``stop`` and ``start`` keep its data and ports, so a
    test can take it away and bring it back."""

    directory: Path
    binary: str
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    ip: str = "127.0.0.1"  # the address it binds and advertises (tests/helpers/hosts.py)

    @property
    def endpoint(self) -> str:
        return f"http://{self.ip}:{self.ports['s3.port']}"

    def start(self) -> None:
        if not self.ports:
            flags = [
                f"{n}.port{g}" for n in ("s3", "master", "volume", "filer") for g in ("", ".grpc")
            ]
            self.ports = {flag: free_port() for flag in flags}
        args = [f"-{flag}={port}" for flag, port in self.ports.items()]
        (self.directory / "data").mkdir(exist_ok=True)
        log = open(self.directory / "weed.log", "ab")  # noqa: SIM115 (the child holds it)
        self.process = subprocess.Popen(
            [self.binary, "server", "-s3", f"-dir={self.directory / 'data'}", f"-ip={self.ip}",
             "-s3.port.iceberg=0", "-s3.port.lance=0", "-volume.max=20", *args],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until creating the bucket succeeds (the S3 port answers before the volumes do)."""
        client = self.client()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.head_bucket(Bucket="prover")
                return
            except Exception:
                try:
                    client.create_bucket(Bucket="prover")
                    return
                except Exception:
                    assert self.process is not None
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)

    def client(self) -> S3Client:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=KEY,
            aws_secret_access_key=SECRET, region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, connect_timeout=2),
        )  # fmt: skip

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def environment(self) -> dict[str, str]:
        """The variables an ``ArtifactStore`` (boto3) reads for this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "us-east-1",
        }


def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    """A running SeaweedFS with bucket ``prover``, its variables set while it runs (a
    fixture's body: ``yield from running(tmp_path_factory)``)."""
    binary = weed_binary()
    if binary is None:
        pytest.skip("SeaweedFS's weed binary is missing (scripts/setup.sh installs it)")
    server = Seaweed(tmp_path_factory.mktemp("seaweed"), binary)
    server.start()
    saved = {k: os.environ.get(k) for k in server.environment()}
    os.environ.update(server.environment())
    try:
        yield server
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
