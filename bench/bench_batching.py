"""Dynamic batching through the service: the latency the window adds, and what a burst of
single requests gains by being proven (and settled) as one batch proof.

One run starts a private stack (its own Redis, anvil, 2 workers with ``RAYON_NUM_THREADS``
``--threads`` each, the API, over a fresh temporary data dir and SQLite database;
``PROVER_BATCH_WINDOW_MS`` = ``--window-ms``), compiles the model's single circuit (the
service's defaults: public inputs and outputs) and its batch-N circuit (N = ``--size``,
hashed inputs and outputs, objective verify-gas; with ``reusable_verifier`` if its own
verifier is over EIP-170's 24 KB at deploy) through the service, deploys both, then:

* lone requests: ``--lone`` batching requests one after another (each alone in its batch,
  so it waits the window, then a batch proof of N slots is made for it), alternating with
  as many non-batched requests on the single circuit (after one warm-up of those); wall
  time from before the POST until the job's end is seen. The added latency is the
  batching p50 minus the single p50, next to what it should be: the window plus the batch
  proof's time minus the single proof's (witness + prove + verify seconds of the jobs);
* a burst: N batching requests with ``settle`` sent at once (one thread each): wall time
  until every batch job has ended, batch proofs made, results per second, then the settle
  job(s) (one transaction per batch): wall until settled, gas per result; versus N
  non-batched requests sent at once on the single circuit (2 workers prove them), and one
  single proof's on-chain acceptance (``POST /v1/proofs/{id}/submissions``) for its gas.

Every input is a distinct calibration sample and every request asks ``fresh``, so nothing
comes from a cache. Timings are wall clock: note the load (1-minute loadavg is recorded at
the start, the end and each phase). Run from the repository root (the defaults take about
7 minutes on 2 shared cores; ``--size 4 --lone 2`` about 4)::

    .venv/bin/python bench/bench_batching.py [--model digits_mlp] [--size 16] [--lone 3] \
        [--window-ms 2000] [--threads 1] [--json bench/results/bench_batching.json] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from bench_service import compile_circuit, percentile, running, say
from common import MODELS_DIR, RESULTS, environment, format_table, write_json

from prover.chain.node import free_port
from prover.client import Client, ServiceError
from prover.config import Settings
from prover.service.keys import create_key


def samples(model_dir: Path) -> list[dict[str, Any]]:
    """Distinct single inputs: the calibration file's samples, one ``input_data`` each."""
    width = len(json.loads((model_dir / "input.json").read_text())["input_data"][0])
    flat = json.loads((model_dir / "calibration.json").read_text())["input_data"][0]
    return [{"input_data": [flat[i : i + width]]} for i in range(0, len(flat) - width + 1, width)]


def deploy(client: Client, circuit_id: str) -> dict[str, Any]:
    """Deploy the circuit's verifier (a chain job); its result."""
    return client.wait(client.deploy(circuit_id)["job_id"])["result"]


def batch_circuit(client: Client, model_dir: Path, n: int) -> dict[str, Any]:
    """The deployed batch-n circuit: hashed, verify-gas; reusable verifier only if its own
    is over EIP-170 (the deploy job says so)."""
    options: dict[str, Any] = {
        "batch_size": n,
        "input_visibility": "hashed",
        "output_visibility": "hashed",
        "objective": "verify-gas",
    }
    made: dict[str, Any] = {"reusable_asked": False}
    started = time.perf_counter()
    made["id"] = compile_circuit(client, model_dir, **options)
    made["compile_s"] = time.perf_counter() - started
    try:
        made["deployment"] = deploy(client, made["id"])
    except ServiceError as exc:
        if "EIP-170" not in exc.message:
            raise
        say(f"own verifier over EIP-170 ({exc.message[:80]}...): reusable verifier")
        started = time.perf_counter()
        made["id"] = compile_circuit(client, model_dir, **options, reusable_verifier=True)
        made["compile_s"] += time.perf_counter() - started
        made["reusable_asked"] = True
        made["deployment"] = deploy(client, made["id"])
    return made


def ask_batched(client: Client, circuit_id: str, input_obj: Any, settle: bool) -> dict:
    """One batching request, fresh (proven again, not answered from the cache)."""
    return client.request_proof(circuit_id, input_obj, fresh=True, batching=True, settle=settle)


def proof_s(job: dict[str, Any]) -> float:
    """A proof job's own proving seconds (witness + prove + verify)."""
    return float(sum(job["result"]["timings"].values()))


def job_span_s(job: dict[str, Any]) -> float:
    """``finished_at - created_at`` of a job, by the service's clock."""
    created, finished = (datetime.fromisoformat(job[k]) for k in ("created_at", "finished_at"))
    return (finished - created).total_seconds()


def lone(client: Client, circuit_id: str, input_obj: Any, batching: bool) -> dict[str, Any]:
    """One request alone: wall seconds from before the POST until its job's end is seen."""
    started = time.perf_counter()
    if batching:
        accepted = ask_batched(client, circuit_id, input_obj, settle=False)
    else:
        accepted = client.request_proof(circuit_id, input_obj, fresh=True)
    job = client.wait(accepted["job_id"])
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "job_span_s": job_span_s(job),
        "proof_s": proof_s(job),
        "size": job["result"].get("size", 1),
        "worker": job["worker"],
        "loadavg_1m": os.getloadavg()[0],
    }


def lone_requests(
    client: Client, ids: dict[str, str], inputs: list[Any], count: int
) -> dict[str, Any]:
    """``count`` lone batching requests alternating with as many lone single requests."""
    lone(client, ids["single"], inputs[-1], batching=False)  # warm-up
    runs: dict[str, list[dict[str, Any]]] = {"batching": [], "single": []}
    for i in range(count):
        runs["batching"].append(lone(client, ids["batch"], inputs[i], batching=True))
        runs["single"].append(lone(client, ids["single"], inputs[i], batching=False))
        say(
            f"lone {i + 1}/{count}: batching {runs['batching'][-1]['wall_s']:.2f} s, "
            f"single {runs['single'][-1]['wall_s']:.2f} s"
        )
    p50 = {
        path: {k: percentile([r[k] for r in rs], 50) for k in ("wall_s", "proof_s")}
        for path, rs in runs.items()
    }
    return {"runs": runs, "p50": p50}


def at_once(url: str, key: str, inputs: list[Any], ask: Any) -> list[dict[str, Any]]:
    """Every input's request sent at the same time, each by its own client."""

    def one(item: Any) -> dict[str, Any]:
        with Client(url, key) as client:
            return ask(client, item)

    with ThreadPoolExecutor(len(inputs)) as pool:
        return list(pool.map(one, inputs))


def batch_burst(client: Client, url: str, key: str, circuit_id: str, inputs: list[Any]) -> dict:
    """N batching requests with settle at once: proven, then settled."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    accepted = at_once(url, key, inputs, lambda c, x: ask_batched(c, circuit_id, x, True))
    posted = time.perf_counter() - started
    job_ids = sorted({a["job_id"] for a in accepted})
    jobs = [client.wait(j) for j in job_ids]
    proven = time.perf_counter() - started
    settles = [client.wait(j["result"]["submit_job_id"])["result"] for j in jobs]
    settled = time.perf_counter() - started
    views = [client.proof(a["proof_id"]) for a in accepted]
    gas = sum(s["gas_used"] for s in settles)
    return {
        "requests": len(inputs),
        "post_s": posted,
        "wall_s": proven,
        "results_per_s": len(inputs) / proven,
        "batch_proofs": len(job_ids),
        "batch_sizes": [j["result"]["size"] for j in jobs],
        "batch_proof_s": [proof_s(j) for j in jobs],
        "workers": [j["worker"] for j in jobs],
        "settled_wall_s": settled,
        "settle_gas_used": [s["gas_used"] for s in settles],
        "settle_gas_per_result": [s["gas_per_result"] for s in settles],
        "gas_per_request": gas / len(inputs),
        "all_accepted": all(s["accepted"] for s in settles),
        "distinct_proof_ids": len({v["proof_id"] for v in views}),
        "positions": sorted(v["batch"]["position"] for v in views),
        "loadavg_1m": [load, os.getloadavg()[0]],
    }


def single_burst(client: Client, url: str, key: str, circuit_id: str, inputs: list[Any]) -> dict:
    """N non-batched requests on the single circuit at once, proven by both workers."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    accepted = at_once(url, key, inputs, lambda c, x: c.request_proof(circuit_id, x, fresh=True))
    posted = time.perf_counter() - started
    jobs = [client.wait(a["job_id"]) for a in accepted]
    wall = time.perf_counter() - started
    workers = [j["worker"] for j in jobs]
    return {
        "requests": len(inputs),
        "post_s": posted,
        "wall_s": wall,
        "results_per_s": len(inputs) / wall,
        "proof_s_p50": percentile([proof_s(j) for j in jobs], 50),
        "jobs_per_worker": {w: workers.count(w) for w in sorted(set(workers))},
        "proof_ids": [a["proof_id"] for a in accepted],
        "loadavg_1m": [load, os.getloadavg()[0]],
    }


def single_gas(client: Client, circuit_id: str, proof_id: str) -> dict[str, Any]:
    """Deploy the single circuit and put one of its proofs on chain: the accept gas."""
    deployment = deploy(client, circuit_id)
    submitted = client.wait(client.submit_onchain(proof_id)["job_id"])["result"]
    return {"deploy": deployment, "gas_used": submitted["gas_used"]}


def circuits(client: Client, model_dir: Path, n: int) -> dict[str, Any]:
    """Both circuits, compiled at once by the two workers; the batch one deployed."""
    started = time.perf_counter()
    single = client.submit_model(model_dir / "model.onnx", model_dir / "calibration.json")
    batch = batch_circuit(client, model_dir, n)
    if single["state"] != "ready":
        client.wait(single["job_id"])
    record = client.circuit(batch["id"])["record"]
    return {
        "single": single["circuit_id"],
        "batch": batch["id"],
        "batch_compile_s": batch["compile_s"],
        "compile_wall_s": time.perf_counter() - started,
        "batch_reusable_asked": batch["reusable_asked"],
        "batch_reusable_verifier": bool(record.get("reusable_verifier")),
        "batch_deployment": batch["deployment"],
        "logrows": {
            "single": client.circuit(single["circuit_id"])["record"]["logrows"],
            "batch": record["logrows"],
        },
    }


def stack_settings(data_dir: Path, workers: int, window_ms: int) -> Settings:
    """A private stack's settings: its own Redis, anvil and API ports."""
    return Settings(
        data_dir=data_dir,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        rpc_url=f"http://127.0.0.1:{free_port()}",
        api_port=free_port(),
        workers=workers,
        measure_top=1,
        batch_window_ms=window_ms,
    )


def measure(model_dir: Path, args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    """Everything, in one private stack."""
    inputs = samples(model_dir)
    pick = [inputs[i % len(inputs)] for i in range(max(args.size, args.lone) + 1)]
    settings = stack_settings(data_dir, 2, args.window_ms)
    url = f"http://{settings.api_host}:{settings.api_port}"
    with running(settings):
        key = create_key(settings.sqlalchemy_url(), "bench")["key"]
        with Client(url, key) as client:
            say(f"compiling {model_dir.name}: single and batch-{args.size}, deploying the batch")
            made = circuits(client, model_dir, args.size)
            ids = {"single": made["single"], "batch": made["batch"]}
            say(f"{args.lone} lone requests each way (window {args.window_ms} ms)")
            lones = lone_requests(client, ids, pick, args.lone)
            say(f"burst of {args.size} batching requests (settle)")
            batched = batch_burst(client, url, key, ids["batch"], pick[: args.size])
            say(f"burst of {args.size} single requests")
            singles = single_burst(client, url, key, ids["single"], pick[: args.size])
            say("single circuit: deploy and one on-chain acceptance")
            gas = single_gas(client, ids["single"], singles["proof_ids"][0])
    p50 = lones["p50"]
    added = p50["batching"]["wall_s"] - p50["single"]["wall_s"]
    expected = args.window_ms / 1000 + p50["batching"]["proof_s"] - p50["single"]["proof_s"]
    return {
        "model": model_dir.name,
        "size": args.size,
        "window_ms": args.window_ms,
        "circuits": made,
        "lone": lones,
        "added_latency_s": added,
        "expected_added_s": expected,
        "burst": {"batching": batched, "single": singles},
        "single_accept_gas": gas["gas_used"],
        "single_deployment": gas["deploy"],
    }


def burst_rows(r: dict[str, Any]) -> list[list[str]]:
    """The bursts' rows: batching (one or more batch proofs, settled) beside singles."""
    bb, sb = r["burst"]["batching"], r["burst"]["single"]
    gas_ratio = bb["gas_per_request"] / r["single_accept_gas"]
    return [
        [
            f"burst of {bb['requests']}: wall until proven (s)",
            f"{bb['wall_s']:.2f}",
            f"{sb['wall_s']:.2f}",
            f"{bb['wall_s'] / sb['wall_s']:.2f}x of single",
        ],
        [
            "  results per second",
            f"{bb['results_per_s']:.3f}",
            f"{sb['results_per_s']:.3f}",
            f"{bb['results_per_s'] / sb['results_per_s']:.2f}x of single",
        ],
        [
            "  proofs made (sizes)",
            f"{bb['batch_proofs']} ({', '.join(map(str, bb['batch_sizes']))})",
            str(sb["requests"]),
            "",
        ],
        ["  wall until settled on chain (s)", f"{bb['settled_wall_s']:.2f}", "-", ""],
        [
            "accept gas per result",
            f"{bb['gas_per_request']:,.0f}",
            f"{r['single_accept_gas']:,}",
            f"{gas_ratio:.3f}x of single",
        ],
    ]


def results_table(r: dict[str, Any], markdown: bool) -> str:
    """Batching beside the single circuit, one measure per row."""
    made, lones, env = r["circuits"], r["lone"]["p50"], r["environment"]
    verifier = "reusable" if made["batch_reusable_verifier"] else "own"
    rows = [
        ["circuit logrows", str(made["logrows"]["batch"]), str(made["logrows"]["single"]), ""],
        ["verifier", verifier, "own", ""],
        [
            "compile (s)",
            f"{made['batch_compile_s']:.1f}",
            "-",
            f"both at once: {made['compile_wall_s']:.1f} s wall",
        ],
        [
            f"lone request p50, wall (s; {r['lone_count']} each)",
            f"{lones['batching']['wall_s']:.2f}",
            f"{lones['single']['wall_s']:.2f}",
            f"added {r['added_latency_s']:.2f} s",
        ],
        [
            "  its proof p50 (witness+prove+verify s)",
            f"{lones['batching']['proof_s']:.2f}",
            f"{lones['single']['proof_s']:.2f}",
            f"window + difference = {r['expected_added_s']:.2f} s",
        ],
        *burst_rows(r),
        [
            "loadavg 1m start / end",
            f"{env['loadavg_start'][0]:.2f}",
            f"{env['loadavg_end'][0]:.2f}",
            f"CPUs: {env['cpus']}",
        ],
    ]
    title = (
        f"{r['model']}: batch-{r['size']} (hashed, verify-gas) vs single circuit (defaults); "
        f"window {r['window_ms']} ms, 2 workers, RAYON_NUM_THREADS={r['threads']}"
    )
    headers = ["measure", f"batching (N={r['size']})", "single", "note"]
    return title + "\n\n" + format_table(headers, rows, markdown)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print the table, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="digits_mlp", metavar="DIR", help="under models/")
    parser.add_argument("--size", type=int, default=16, help="N of the batch circuit")
    parser.add_argument("--lone", type=int, default=3, help="lone requests per path")
    parser.add_argument("--window-ms", type=int, default=2000, help="PROVER_BATCH_WINDOW_MS")
    parser.add_argument("--threads", default="1", help="RAYON_NUM_THREADS of each worker")
    parser.add_argument("--json", type=Path, default=RESULTS / "bench_batching.json")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args(argv)
    if not 2 <= args.size <= 64 or args.lone < 1:
        parser.error("--size must be 2..64 and --lone at least 1")
    model_dir = MODELS_DIR / args.model
    if not all((model_dir / f).is_file() for f in ("model.onnx", "calibration.json")):
        parser.error(f"{model_dir} lacks model.onnx or calibration.json")
    os.environ["RAYON_NUM_THREADS"] = args.threads  # the stack's parts inherit it

    started, load_start = time.perf_counter(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-batching-") as tmp:
        result = measure(model_dir, args, Path(tmp))
    report = {
        **result,
        "lone_count": args.lone,
        "threads": args.threads,
        "workers": 2,
        "environment": environment(load_start),
        "wall_s": time.perf_counter() - started,
    }
    print()
    print(results_table(report, args.markdown))
    write_json(args.json, report)
    print(f"raw numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
