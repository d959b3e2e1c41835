"""Work on untrusted models in a child process under memory and time limits.

onnx, onnxruntime and ezkl allocate whatever a model asks for, and ezkl aborts the whole
process when an allocation fails. So intake and compiles run in a child under an
address-space limit (RLIMIT_AS) and an alarm: a child that dies of a limit becomes a
``ResourceLimitError`` naming the limit, and the API or worker that asked lives on.

Children are forked from a zygote, a helper process started once per parent process
(``python -m prover.circuits.sandbox``) that has imported onnx, onnxruntime and ezkl and
does nothing else. A child then costs a fork, not a fresh interpreter (importing onnx
alone takes about a second), and starts without the parent's threads: a fork of a worker
that has proven with ezkl would inherit a thread pool whose threads it lacks.
multiprocessing's forkserver works the same way but refuses to start children from
Celery's (daemonic) pool processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import math
import os
import pickle
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from prover.errors import ProverError, ResourceLimitError, panic_error

log = logging.getLogger(__name__)
T = TypeVar("T")

# What allocation failures print: Rust's handler, C++'s bad_alloc, Python's MemoryError.
_ALLOCATION_MARKERS = (
    "memory allocation of",
    "bad_alloc",
    "bad allocation",
    "MemoryError",
    "Cannot allocate memory",
    "out of memory",
    "failed to allocate",
    "capacity overflow",
)
# Signals a process under RLIMIT_AS dies of when an allocation fails outside Python.
_MEMORY_SIGNALS = (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGKILL)
# A child that reports nothing this long after its own alarm is killed from the parent.
_BACKSTOP_S = 30.0
_PRELOAD = ("numpy", "onnx", "onnxruntime", "ezkl", "prover.circuits.intake")


@dataclass(frozen=True)
class Limits:
    """What a child may use, and the names of the settings that set it (for messages)."""

    what: str  # "intake", "compile": what the message says ran out
    memory_bytes: int | None
    time_s: float
    memory_setting: str
    time_setting: str

    def memory_text(self) -> str:
        if not self.memory_bytes:
            return "no memory limit"
        return f"its memory limit of {self.memory_bytes / 2**30:.2f} GiB ({self.memory_setting})"


def machine_memory() -> int:
    """Physical memory of this machine, in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def run_limited(
    fn: Callable[..., T],
    *args: Any,
    limits: Limits,
    progress: Callable[[str, float], None] | None = None,
) -> T:
    """``fn(*args)`` in a child under ``limits``; its result, or the error it raised.

    ``fn`` and its arguments must pickle (a module-level function). With ``progress``,
    ``fn`` gets a ``progress`` keyword argument whose calls are relayed to it. Raises
    ``ResourceLimitError`` when the child runs out of memory or time.
    """
    with tempfile.TemporaryDirectory(prefix="prover-sandbox-") as tmp:
        work = Path(tmp)
        (work / "request.pkl").write_bytes(pickle.dumps((fn, args, progress is not None)))
        call = _zygote().submit(work, limits)
        relay = _ProgressRelay(work / "progress.jsonl", progress)
        deadline = time.monotonic() + limits.time_s + _BACKSTOP_S
        try:
            while not call.done.wait(0.2):
                relay.poll()
                if time.monotonic() > deadline:
                    call.kill()
                    call.done.wait(_BACKSTOP_S)
                    break
        except BaseException:  # a soft time limit or an interrupt in the parent
            call.kill()
            raise
        relay.poll()
        output = work / "output.log"
        _echo(output)
        return _outcome(call, work, output, limits)


class _ProgressRelay:
    """Reads the child's progress lines as they come and calls the parent's callback."""

    def __init__(self, path: Path, callback: Callable[[str, float], None] | None) -> None:
        self.path, self.callback, self.offset = path, callback, 0

    def poll(self) -> None:
        if self.callback is None or not self.path.exists():
            return
        with self.path.open("rb") as stream:
            stream.seek(self.offset)
            data = stream.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.splitlines():
            message, fraction = json.loads(line)
            self.callback(message, fraction)


def _echo(output: Path) -> None:
    """The child's stdout and stderr (ezkl's tables, warnings) onto the parent's stderr."""
    if output.exists() and output.stat().st_size:
        with output.open("rb") as stream, contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
            shutil.copyfileobj(stream, sys.stderr.buffer)
            sys.stderr.flush()


def _tail(output: Path, lines: int = 5) -> str:
    if not output.exists():
        return ""
    with output.open("rb") as stream:
        stream.seek(max(0, output.stat().st_size - 8192))
        text = stream.read().decode(errors="replace")
    return "\n".join(line for line in text.strip().splitlines()[-lines:] if line.strip())


def _outcome(call: _Call, work: Path, output: Path, limits: Limits) -> Any:
    result = work / "result.pkl"
    ended = call.status is not None and os.waitstatus_to_exitcode(call.status) == 0
    if ended and result.exists():
        kind, value = pickle.loads(result.read_bytes())
        if kind == "ok":
            return value
        error = _restored(value)
        if isinstance(error, ResourceLimitError) and error.details.get("limit") == "memory":
            raise ResourceLimitError(
                f"{limits.what} ran out of memory under {limits.memory_text()}: "
                f"{error.message}; the model needs more memory than allowed",
                limit="memory",
                memory_bytes=limits.memory_bytes,
            )
        raise error
    tail = _tail(output)
    code = None if call.status is None else os.waitstatus_to_exitcode(call.status)
    if code is None:
        died = "ended without a status (the sandbox helper died)"
    else:
        died = f"died of {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
    last = f": {tail.splitlines()[-1]}" if tail else ""
    if call.killed or code == -signal.SIGALRM:
        raise ResourceLimitError(
            f"{limits.what} ran past its time limit of {limits.time_s:g} s "
            f"({limits.time_setting}); the model is too large or too slow for it",
            limit="time",
            time_s=limits.time_s,
        )
    memory = any(marker in tail for marker in _ALLOCATION_MARKERS)
    if limits.memory_bytes and (memory or (code is not None and -code in _MEMORY_SIGNALS)):
        raise ResourceLimitError(
            f"{limits.what} ran out of memory under {limits.memory_text()}: its process "
            f"{died}{last}; the model needs more memory than allowed",
            limit="memory",
            memory_bytes=limits.memory_bytes,
        )
    raise ProverError(f"{limits.what} failed: its process {died}{last}")


def _restored(value: Any) -> BaseException:
    """The child's exception, rebuilt (a ``ProverError`` keeps its details)."""
    if isinstance(value, tuple) and value and value[0] == "prover":
        _, cls, message, details = value
        exc = cls.__new__(cls)
        ProverError.__init__(exc, message, **details)
        return exc
    return value if isinstance(value, BaseException) else ProverError(str(value))


class _Call:
    """One child: its pid once forked, its wait status once reaped."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.pid: int | None = None
        self.status: int | None = None
        self.killed = False

    def kill(self) -> None:
        if self.pid is not None and not self.done.is_set():
            self.killed = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


class _Zygote:
    """The parent's side: the helper process, its requests and their replies."""

    def __init__(self) -> None:
        self.owner = os.getpid()
        self.lock = threading.Lock()
        self.calls: dict[int, _Call] = {}
        self.next_id = 0
        started: list[subprocess.Popen[bytes] | BaseException] = []
        ready = threading.Event()
        threading.Thread(
            target=self._start_and_read, args=(started, ready), daemon=True, name="sandbox"
        ).start()
        ready.wait()
        if isinstance(started[0], BaseException):
            raise started[0]
        self.process = started[0]

    def _start_and_read(
        self, started: list[subprocess.Popen[bytes] | BaseException], ready: threading.Event
    ) -> None:
        """Start the helper from this thread, then read its replies here until it ends.

        The helper dies with the *thread* that started it (PR_SET_PDEATHSIG follows the
        parent thread, not the process), so that thread must live as long as the helper:
        an API request's pool thread, which ends when idle, would take the helper along.
        """
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "prover.circuits.sandbox", str(self.owner)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
        except BaseException as exc:
            started.append(exc)
            ready.set()
            return
        started.append(process)
        ready.set()
        self._read(process)

    def alive(self) -> bool:
        return self.owner == os.getpid() and self.process.poll() is None

    def submit(self, work: Path, limits: Limits) -> _Call:
        call = _Call()
        request = {
            "dir": str(work),
            "memory": limits.memory_bytes or 0,
            "time": limits.time_s,
            "env": dict(os.environ),
        }
        with self.lock:
            self.next_id += 1
            self.calls[self.next_id] = call
            line = json.dumps({"id": self.next_id, **request}) + "\n"
            assert self.process.stdin is not None
            try:
                self.process.stdin.write(line.encode())
                self.process.stdin.flush()
            except OSError:
                del self.calls[self.next_id]
                call.done.set()
        return call

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            reply = json.loads(raw)
            with self.lock:
                call = self.calls.get(reply["id"])
                if call is None:
                    continue
                if "pid" in reply:
                    call.pid = reply["pid"]
                else:
                    call.status = reply["status"]
                    del self.calls[reply["id"]]
                    call.done.set()
        with self.lock:  # the helper died: nothing pending will be answered
            for call in self.calls.values():
                call.done.set()
            self.calls.clear()


_current: _Zygote | None = None
_current_lock = threading.Lock()


def _zygote() -> _Zygote:
    global _current
    with _current_lock:
        if _current is None or not _current.alive():
            _current = _Zygote()
        return _current


# The helper process and its children.


def _die_with(parent: int) -> None:
    """Receive SIGKILL when the parent process dies (Linux), and stop if it already has."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(0)


def _child(request: dict, protocol: IO[bytes]) -> None:
    """In a forked child: apply the limits, run the request, leave its result; never returns."""
    code = 1
    try:
        _die_with(os.getppid())
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        protocol.close()
        # The caller's environment now, not the helper's from its start: a setting made
        # since (an object store's credentials, say) reaches the child, through the pipe.
        os.environ.clear()
        os.environ.update({**request["env"], "OPENBLAS_NUM_THREADS": "1"})
        work = Path(request["dir"])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        output = os.open(work / "output.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(output, 1)
        os.dup2(output, 2)
        if request["memory"]:
            resource.setrlimit(resource.RLIMIT_AS, (request["memory"], request["memory"]))
        signal.alarm(max(1, math.ceil(request["time"])))
        _run_request(work)
        code = 0
    except BaseException as exc:  # before or after the request ran: leave its reason
        with contextlib.suppress(Exception):
            os.write(2, f"{type(exc).__name__}: {exc}\n".encode())
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _run_request(work: Path) -> None:
    fn, args, wants_progress = pickle.loads((work / "request.pkl").read_bytes())
    kwargs: dict[str, Any] = {}
    if wants_progress:
        stream = (work / "progress.jsonl").open("a")

        def progress(message: str, fraction: float) -> None:
            stream.write(json.dumps([message, fraction]) + "\n")
            stream.flush()

        kwargs["progress"] = progress
    try:
        outcome: tuple[str, Any] = ("ok", fn(*args, **kwargs))
    except BaseException as exc:
        outcome = ("error", _portable(exc))
    try:
        data = pickle.dumps(outcome)
    except Exception as exc:
        data = pickle.dumps(("error", ProverError(f"the result does not pickle: {exc}")))
    (work / "result.tmp").write_bytes(data)
    os.replace(work / "result.tmp", work / "result.pkl")


def _portable(exc: BaseException) -> Any:
    """An exception the parent can rebuild; allocation failures become resource errors,
    an ezkl panic the compile's own error."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, MemoryError) or any(m in text for m in _ALLOCATION_MARKERS):
        exc = ResourceLimitError(text[:300], limit="memory")
    exc = panic_error(exc) or exc
    if isinstance(exc, ProverError):
        return ("prover", type(exc), exc.message, exc.details)
    traceback.print_exception(exc)
    try:
        pickle.dumps(exc)
        return exc
    except Exception:
        return ProverError(text[:1000])


def _serve(parent: int) -> None:
    """The helper's loop: fork a child per request line, report each child's pid and end."""
    _die_with(parent)
    for module in _PRELOAD:
        __import__(module)
    protocol = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # a stray print must not corrupt the replies
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, int] = {}
    pending = b""
    while True:
        ready, _, _ = select.select([0, wake_r], [], [])
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)
        if 0 in ready:
            data = os.read(0, 65536)
            if not data:
                return  # the parent is gone; the children die with this process
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    os.close(wake_r)
                    os.close(wake_w)
                    _child(request, protocol)
                children[pid] = request["id"]
                protocol.write(json.dumps({"id": request["id"], "pid": pid}).encode() + b"\n")
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            reply = {"id": children.pop(pid), "status": status}
            protocol.write(json.dumps(reply).encode() + b"\n")


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
