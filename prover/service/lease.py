"""Keeping a job's lease alive while the worker is busy inside ezkl.

ezkl's Rust calls hold the GIL for the whole of a proof or a key setup, so no thread of the
worker can renew the lease meanwhile. A small helper process per worker process does it:
told ``hold JOB TOKEN`` or ``release`` on its stdin, it renews the held lease every third
of the lease period, exits when its stdin closes, and is killed by the kernel if the worker
dies (so a dead worker's lease lapses and another worker takes the job over).

Run as ``python -m prover.service.lease DB_URL LEASE_S``.
"""

from __future__ import annotations

import contextlib
import ctypes
import select
import signal
import subprocess
import sys
from typing import IO

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child process (Linux): receive SIGKILL when the parent process dies."""
    # Not Linux: no prctl, and the helper stops at stdin EOF instead.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class LeaseKeeper:
    """The worker side: one helper process, started on first use."""

    def __init__(self, db_url: str, lease_s: float) -> None:
        self.db_url, self.lease_s = db_url, lease_s
        self._process: subprocess.Popen[str] | None = None

    def _pipe(self) -> IO[str]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "prover.service.lease", self.db_url, str(self.lease_s)],
                stdin=subprocess.PIPE,
                text=True,
                preexec_fn=die_with_parent,
            )
        assert self._process.stdin is not None
        return self._process.stdin

    def _send(self, line: str) -> None:
        pipe = self._pipe()
        pipe.write(line + "\n")
        pipe.flush()

    def start(self) -> None:
        """Start the helper now (a worker does at start, so no job waits for it)."""
        self._pipe()

    def hold(self, job_id: str, token: str) -> None:
        self._send(f"hold {job_id} {token}")

    def release(self) -> None:
        self._send("release")


def main(db_url: str, lease_s: float) -> None:
    """The helper's loop (see the module docstring)."""
    from prover.service.jobs import renew

    held: tuple[str, str] | None = None
    stdin = sys.stdin
    while True:
        ready, _, _ = select.select([stdin], [], [], lease_s / 3)
        if ready:
            line = stdin.readline()
            if not line:
                return
            words = line.split()
            held = (words[1], words[2]) if words[:1] == ["hold"] else None
        if held is not None:  # renew at once when told to hold, then every third of a lease
            try:
                if not renew(db_url, held[0], held[1], lease_s):
                    held = None
            except Exception as exc:  # the database may be briefly away; try again next beat
                print(f"lease helper: renewal failed: {exc}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
