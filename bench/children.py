"""Child processes for the benchmarks: each measured call runs in a fresh spawned process, so
its time, memory and imports are its own, not what earlier calls left behind.

Nothing but the standard library at import: a spawned child imports its parent script's
modules before it measures (``fit_cost_model``'s baseline is a process with ezkl loaded).
"""

from __future__ import annotations

import multiprocessing
import resource
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def in_children(fn: Callable[..., T], calls: Sequence[tuple[Any, ...]]) -> tuple[list[T], float]:
    """``fn(*args)`` for each args in its own fresh spawned process, all at once; (results,
    wall seconds). One single-process executor per call: a process never takes a second
    call, and one that dies raises (BrokenProcessPool) instead of hanging the run."""
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ExitStack() as stack:
        pools = [stack.enter_context(ProcessPoolExecutor(1, mp_context=context)) for _ in calls]
        futures = [pool.submit(fn, *args) for pool, args in zip(pools, calls, strict=True)]
        results = [f.result() for f in futures]
    return results, time.perf_counter() - started


def in_child(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a fresh spawned process; its result."""
    (result,), _ = in_children(fn, [args])
    return result


def first_line(exc: BaseException) -> str:
    """A one-line description of an exception raised in a child process."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300] if text else 'failed'}"


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (``ru_maxrss`` is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> int:
    """Reset this process's peak RSS (VmHWM, Linux), so the peak measured afterwards is the
    work's; returns the resident bytes now."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_bytes("VmRSS")


def peak_bytes() -> int:
    """This process's peak RSS since ``reset_peak``."""
    return _status_bytes("VmHWM")


class RssSampler:
    """The largest resident set size of this process while a block runs, sampled every
    20 ms: ``ru_maxrss`` alone cannot show a prover smaller than the imports' peak."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self.before_mb = self._process.memory_info().rss / 2**20
        self.peak_mb = self.before_mb
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 2**20)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def report(self) -> dict[str, float]:
        return {
            "rss_before_mb": self.before_mb,
            "rss_peak_mb": self.peak_mb,
            "prover_mb": self.peak_mb - self.before_mb,
        }
