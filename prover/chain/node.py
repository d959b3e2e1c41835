"""A local anvil chain for development and tests."""

from __future__ import annotations

import socket
import subprocess
import time
from types import TracebackType

from web3 import Web3

from prover.chain.toolchain import anvil_binary
from prover.config import Settings
from prover.errors import ToolchainError

# anvil's first development account (public, well-known; never hold real funds with it).
ANVIL_DEV_KEY = Settings.model_fields["private_key"].default


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalChain:
    """Start anvil on 127.0.0.1 and stop it on exit; ``rpc_url`` answers once started."""

    def __init__(self, port: int | None = None, chain_id: int = 31337) -> None:
        self.port = port or free_port()
        self.chain_id = chain_id
        self.rpc_url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> LocalChain:
        command = [
            str(anvil_binary()),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--silent",
        ]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        w3 = Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 2}))
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ToolchainError(
                    f"anvil exited at start with status {self._process.returncode}"
                )
            try:
                if w3.eth.chain_id == self.chain_id:
                    return self
            except Exception:
                time.sleep(0.1)
        self.stop()
        raise ToolchainError(f"anvil did not answer on {self.rpc_url} within {timeout} s")

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The anvil process once started."""
        return self._process

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> LocalChain:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
