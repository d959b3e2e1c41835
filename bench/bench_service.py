"""Benchmark the proving service against the raw library path, for one model.

One run starts a private stack (its own Redis, anvil, one worker and the API, over a fresh
temporary data dir and SQLite database), compiles the model through the service, then:

* raw library prove: ``prove_input(store, circuit, input, fresh=True)`` in this process,
  ``--requests`` times; wall time of each call (and ezkl's ``prove_s`` inside it);
* service end to end: ``--requests`` sequential ``request_proof(fresh=True)`` + ``wait``;
  wall time from before the POST until ``wait`` returns. The overhead is its median minus
  the raw median (goal: under 10% of the raw time). Raw and service proofs alternate, after
  one warm-up of each, so a change of load during the run weighs on both alike;
* queue latency with an idle worker: ``started_at - created_at`` of those jobs (goal: p99
  under 50 ms);
* throughput: ``--throughput-jobs`` fresh proofs submitted at once, first submit to last
  completion, with 1 worker and then with 2 (a second stack over the same data dir and
  database, where the circuit is already compiled).

Every ezkl proof already uses all cores, so on a small machine 2 workers may not prove
faster than 1. Timings are wall clock: run it on an otherwise idle machine. Run from the
repository root (a run with the defaults takes a few minutes on 2 cores)::

    .venv/bin/python bench/bench_service.py [--model digits_mlp] [--requests 50] \
        [--throughput-jobs 20] [--json out.json] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common import MODELS_DIR, environment, format_table, write_json

from prover.chain.node import free_port
from prover.client import Client
from prover.config import Settings
from prover.proving.proofs import prove_input
from prover.service.keys import create_key
from prover.stack import Stack
from prover.store import ArtifactStore

GOAL_OVERHEAD = 0.10  # service median latency over the raw median, as a fraction of it
GOAL_QUEUE_P99_MS = 50.0


def say(line: str) -> None:
    """Progress lines go to stderr, so stdout ends with the table."""
    print(f"[bench] {line}", file=sys.stderr, flush=True)


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear between the closest ranks."""
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread(samples: Sequence[float]) -> dict[str, Any]:
    """p50/p95/p99, mean and the samples themselves."""
    return {
        "p50": percentile(samples, 50),
        "p95": percentile(samples, 95),
        "p99": percentile(samples, 99),
        "mean": statistics.fmean(samples),
        "samples": list(samples),
    }


@contextmanager
def running(settings: Settings) -> Iterator[Stack]:
    """A started stack over ``settings``, always stopped afterwards."""
    stack = Stack(settings, say=say)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def compile_circuit(client: Client, model_dir: Path, **options: Any) -> str:
    """Compile through the service (or find it compiled); returns the circuit id."""
    accepted = client.submit_model(
        model_dir / "model.onnx", model_dir / "calibration.json", **options
    )
    if accepted["state"] != "ready":
        client.wait(accepted["job_id"])
    return accepted["circuit_id"]


def raw_proof(store: ArtifactStore, circuit_id: str, input_obj: Any) -> dict[str, Any]:
    """One fresh proof through the library in this process: wall and ezkl seconds."""
    started = time.perf_counter()
    record = prove_input(store, circuit_id, input_obj, fresh=True)
    return {"wall_s": time.perf_counter() - started, "prove_s": record["timings"]["prove_s"]}


def service_proof(client: Client, circuit_id: str, input_obj: Any) -> dict[str, Any]:
    """One fresh proof through the API: wall seconds, POST ms, queue ms (``started_at -
    created_at``), ms from ``finished_at`` until ``wait`` returned, the worker's timings."""
    started = time.perf_counter()
    job_id = client.request_proof(circuit_id, input_obj, fresh=True)["job_id"]
    posted = time.perf_counter()
    job = client.wait(job_id)
    wall, returned = time.perf_counter() - started, datetime.now(timezone.utc)
    created, begun, finished = (
        datetime.fromisoformat(job[k]) for k in ("created_at", "started_at", "finished_at")
    )
    return {
        "wall_s": wall,
        "post_ms": (posted - started) * 1000,
        "queue_ms": (begun - created).total_seconds() * 1000,
        "wait_lag_ms": (returned - finished).total_seconds() * 1000,
        "prove_s": job["result"]["timings"]["prove_s"],
        "job_timings": job["timings"],
    }


def paired_proofs(
    store: ArtifactStore, client: Client, circuit_id: str, input_obj: Any, n: int
) -> dict[str, Any]:
    """``n`` raw proofs and ``n`` sequential service proofs, after one warm-up of each.

    They alternate (raw, service, raw, ...), so a change of machine load during the run
    weighs on both paths alike."""
    raw_proof(store, circuit_id, input_obj)
    service_proof(client, circuit_id, input_obj)
    raws, services, loads = [], [], []
    for i in range(n):
        loads.append(os.getloadavg()[0])
        raws.append(raw_proof(store, circuit_id, input_obj))
        services.append(service_proof(client, circuit_id, input_obj))
        say(f"{i + 1}/{n}: raw {raws[-1]['wall_s']:.3f} s, service {services[-1]['wall_s']:.3f} s")
    raw = {k: spread([r[k] for r in raws]) for k in ("wall_s", "prove_s")}
    keys = ("wall_s", "post_ms", "queue_ms", "wait_lag_ms", "prove_s")
    service: dict[str, Any] = {k: spread([r[k] for r in services]) for k in keys}
    service["job_timings"] = [r["job_timings"] for r in services]
    paired = [s["wall_s"] - r["wall_s"] for r, s in zip(raws, services, strict=True)]
    return {"raw": raw, "service": service, "paired_overhead_s": spread(paired), "loadavg": loads}


def throughput(client: Client, circuit_id: str, input_obj: Any, m: int) -> dict[str, Any]:
    """Submit ``m`` fresh proofs at once, then wait for all; proofs per second."""
    started = time.perf_counter()
    job_ids = [client.request_proof(circuit_id, input_obj, fresh=True)["job_id"] for _ in range(m)]
    submitted = time.perf_counter() - started
    workers = [client.wait(job_id)["worker"] for job_id in job_ids]
    wall = time.perf_counter() - started
    return {
        "jobs": m,
        "submit_s": submitted,
        "wall_s": wall,
        "proofs_per_s": m / wall,
        "jobs_per_worker": {w: workers.count(w) for w in sorted(set(workers))},
    }


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the API and by the workers, each summed
    over its session (a worker's pool child included); Linux ``/proc`` only, else zeros."""
    sessions = {
        p.process.pid: "api" if p.name == "api" else "workers"
        for p in stack.parts
        if p.process is not None and (p.name == "api" or p.name.startswith("worker"))
    }
    used = dict.fromkeys(sessions.values(), 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        name = sessions.get(int(fields[3]))
        if name is not None:
            used[name] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def measure(model_dir: Path, requests: int, jobs: int, data_dir: Path) -> dict[str, Any]:
    """Everything, in one stack with 1 worker and then one with 2."""
    input_obj = json.loads((model_dir / "input.json").read_text())
    settings = Settings(
        data_dir=data_dir,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        rpc_url=f"http://127.0.0.1:{free_port()}",
        api_port=free_port(),
        workers=1,
        measure_top=1,
    )
    url = f"http://{settings.api_host}:{settings.api_port}"
    with running(settings) as stack:
        key = create_key(settings.sqlalchemy_url(), "bench")["key"]
        with Client(url, key) as client:
            say(f"compiling {model_dir.name}")
            started = time.perf_counter()
            circuit_id = compile_circuit(client, model_dir)
            compile_s = time.perf_counter() - started
            logrows = client.circuit(circuit_id)["record"]["logrows"]
            say(f"raw library and service proofs ({requests} each, alternating)")
            store = ArtifactStore(settings.data_dir)
            cpu_before = cpu_seconds(stack)
            pairs = paired_proofs(store, client, circuit_id, input_obj, requests)
            cpu_after = cpu_seconds(stack)
            say(f"throughput, 1 worker ({jobs} jobs)")
            one = throughput(client, circuit_id, input_obj, jobs)
    two_settings = settings.model_copy(update={"workers": 2})
    with running(two_settings), Client(url, key) as client:
        if compile_circuit(client, model_dir) != circuit_id:
            raise RuntimeError("the second stack derived another circuit id")
        say("warming up 2 workers")
        throughput(client, circuit_id, input_obj, 2)
        say(f"throughput, 2 workers ({jobs} jobs)")
        two = throughput(client, circuit_id, input_obj, jobs)
    raw, service = pairs["raw"], pairs["service"]
    overhead = service["wall_s"]["p50"] - raw["wall_s"]["p50"]
    return {
        "model": model_dir.name,
        "requests": requests,
        "circuit_id": circuit_id,
        "logrows": logrows,
        "compile_s": compile_s,
        "raw": raw,
        "service": service,
        "overhead_s": overhead,
        "overhead_pct": 100 * overhead / raw["wall_s"]["p50"],
        "paired_overhead_s": pairs["paired_overhead_s"],
        "loadavg_1m_per_pair": pairs["loadavg"],
        # CPU seconds of the API (requests, long-poll database polling) and the workers
        # over the raw and service proofs, warm-ups included.
        "stack_cpu_s": {k: cpu_after[k] - cpu_before[k] for k in cpu_after},
        "throughput": {"1": one, "2": two},
    }


def results_table(r: dict[str, Any], markdown: bool) -> str:
    """One number per row, with the goal where there is one."""
    raw, svc, queue = r["raw"], r["service"], r["service"]["queue_ms"]
    one, two = r["throughput"]["1"]["proofs_per_s"], r["throughput"]["2"]["proofs_per_s"]
    overhead_ok = r["overhead_pct"] < 100 * GOAL_OVERHEAD
    queue_ok = queue["p99"] < GOAL_QUEUE_P99_MS
    rows = [
        ["raw library prove p50 (s)", f"{raw['wall_s']['p50']:.3f}", ""],
        ["raw library prove p95 (s)", f"{raw['wall_s']['p95']:.3f}", ""],
        ["  ezkl prove_s in it, p50 (s)", f"{raw['prove_s']['p50']:.3f}", ""],
        ["service end-to-end p50 (s)", f"{svc['wall_s']['p50']:.3f}", ""],
        ["service end-to-end p95 (s)", f"{svc['wall_s']['p95']:.3f}", ""],
        ["  worker's ezkl prove_s, p50 (s)", f"{svc['prove_s']['p50']:.3f}", ""],
        ["overhead, p50 - raw p50 (s)", f"{r['overhead_s']:.3f}", ""],
        [
            "overhead (% of raw p50)",
            f"{r['overhead_pct']:.1f}",
            f"< {100 * GOAL_OVERHEAD:.0f}%: {'met' if overhead_ok else 'NOT met'}",
        ],
        ["queue latency, idle worker p50 (ms)", f"{queue['p50']:.1f}", ""],
        ["queue latency, idle worker p95 (ms)", f"{queue['p95']:.1f}", ""],
        [
            "queue latency, idle worker p99 (ms)",
            f"{queue['p99']:.1f}",
            f"< {GOAL_QUEUE_P99_MS:.0f} ms: {'met' if queue_ok else 'NOT met'}",
        ],
        ["throughput, 1 worker (proofs/s)", f"{one:.3f}", ""],
        ["throughput, 2 workers (proofs/s)", f"{two:.3f}", f"({two / one:.2f}x of 1 worker)"],
        ["circuit logrows", str(r["logrows"]), ""],
        ["CPU cores", str(os.cpu_count()), ""],
    ]
    title = (
        f"{r['model']}: {r['requests']} sequential proofs per path, "
        f"{r['throughput']['1']['jobs']} at once for throughput"
    )
    return title + "\n\n" + format_table(["measure", "value", "goal"], rows, markdown)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="digits_mlp", metavar="DIR", help="under models/")
    parser.add_argument("--requests", type=int, default=50, help="sequential proofs per path")
    parser.add_argument("--throughput-jobs", type=int, default=20, help="proofs submitted at once")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write raw numbers here")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.throughput_jobs < 1:
        parser.error("--requests and --throughput-jobs must be at least 1")
    model_dir = MODELS_DIR / args.model
    missing = [
        f for f in ("model.onnx", "calibration.json", "input.json") if not (model_dir / f).is_file()
    ]
    if missing:
        parser.error(f"{model_dir} lacks {', '.join(missing)}")

    started, load_start = time.perf_counter(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        result = measure(model_dir, args.requests, args.throughput_jobs, Path(tmp))
    print()
    print(results_table(result, args.markdown))

    if args.json:
        report = {
            "environment": environment(load_start),
            "throughput_jobs": args.throughput_jobs,
            "goals": {
                "overhead_pct_below": 100 * GOAL_OVERHEAD,
                "queue_p99_ms_below": GOAL_QUEUE_P99_MS,
            },
            "wall_s": time.perf_counter() - started,
            **result,
        }
        write_json(args.json, report)
        print(f"raw numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
