"""Benchmark webhook delivery latency: from an event's creation to its receipt.

One run starts a private stack (its own Redis, anvil, one job worker, the webhooks worker
and the API, over a fresh temporary data dir and SQLite database; webhooks to private
addresses allowed), registers a webhook for every job event with a receiver on
127.0.0.1 (tests/helpers/receiver.py), compiles the model and asks for fresh proofs, a
few at once, until ``--events`` deliveries have arrived. A delivery's latency is its
arrival time at the receiver minus its event's ``created_at`` (both this machine's
clock): the dispatcher's poll (``PROVER_WEBHOOK_POLL_S``, 0.2 s by default), the queue,
the signed POST. Proofs run meanwhile, so the numbers include a machine busy proving.
Run from the repository root::

    .venv/bin/python bench/bench_webhooks.py [--model digits_mlp] [--events 100] \\
        [--json out.json] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bench_service import compile_circuit, percentile, running, say
from common import MODELS_DIR, RESULTS, environment, format_table, load_file, write_json

from prover.chain.node import free_port
from prover.client import Client
from prover.config import Settings
from prover.service.keys import create_key
from prover.service.webhooks import JOB_TYPES

RECEIVER = Path(__file__).resolve().parents[1] / "tests" / "helpers" / "receiver.py"


def latencies_ms(received: list[Any]) -> list[float]:
    """Each delivery's arrival minus its event's creation, in ms."""
    return [
        (r.at - datetime.fromisoformat(r.payload["created_at"]).timestamp()) * 1000
        for r in received
    ]


def drive(client: Client, receiver: Any, model_dir: Path, events: int) -> float:
    """Compile, then prove fresh (three at a time) until ``events`` deliveries arrived;
    the seconds it took."""
    started = time.perf_counter()
    circuit_id = compile_circuit(client, model_dir, strategy="ezkl-default")
    sample = (model_dir / "input.json").read_text()
    i = 0
    while len(receiver.delivered()) < events:
        jobs = [
            client.request_proof(circuit_id, _varied(sample, i + k), fresh=True) for k in range(3)
        ]
        for job in jobs:
            client.wait(job["job_id"], timeout=600)
        i += 3
        say(f"{len(receiver.delivered())} deliveries")
    time.sleep(2)  # the last events' deliveries
    return time.perf_counter() - started


def _varied(sample: str, i: int) -> Any:
    """The model's sample input (``{"input_data": [[...]]}``), nudged so that each proof
    is a new one."""
    values = json.loads(sample)["input_data"][0]
    values[0] = float(values[0]) + i * 1e-3
    return [values]


def report(samples: list[float], wall_s: float, attempts: list[int]) -> dict[str, Any]:
    return {
        "deliveries": len(samples),
        "p50_ms": percentile(samples, 50),
        "p95_ms": percentile(samples, 95),
        "p99_ms": percentile(samples, 99),
        "max_ms": max(samples),
        "mean_ms": sum(samples) / len(samples),
        "first_attempt_share": sum(1 for a in attempts if a == 1) / max(1, len(attempts)),
        "wall_s": wall_s,
        "samples_ms": samples,
    }


def run(model: str, events: int) -> dict[str, Any]:
    receiver_module = load_file("bench_receiver", RECEIVER)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            redis_url=f"redis://127.0.0.1:{free_port()}/0",
            rpc_url=f"http://127.0.0.1:{free_port()}",
            api_port=free_port(),
            workers=1,
            measure_top=1,
            webhook_allow_private=True,
        )
        with (
            running(settings),
            receiver_module.Receiver() as receiver,
            Client(f"http://127.0.0.1:{settings.api_port}", _key(settings)) as client,
        ):
            hook = client.register_webhook(receiver.url, [*JOB_TYPES, "proof.ready"])
            wall = drive(client, receiver, MODELS_DIR / model, events)
            delivered = receiver.delivered()[:events]
            rows = client.webhook_deliveries(hook["webhook_id"], limit=100)["items"]
    attempts = [len(d["attempts"]) for d in rows]
    return {
        "model": model,
        **report(latencies_ms(delivered), wall, attempts),
        "environment": environment(load),
    }


def _key(settings: Settings) -> str:
    return create_key(settings.sqlalchemy_url(), "bench")["key"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="digits_mlp", metavar="DIR", help="under models/")
    parser.add_argument("--events", type=int, default=100, help="deliveries to measure")
    parser.add_argument("--json", type=Path, default=RESULTS / "webhooks.json")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.model, args.events)
    headers = ["deliveries", "p50 ms", "p95 ms", "p99 ms", "max ms", "1st attempt"]
    row = [
        str(result["deliveries"]),
        *(f"{result[k]:.0f}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
        f"{result['first_attempt_share']:.0%}",
    ]
    print(format_table(headers, [row], args.markdown))
    write_json(args.json, result)
    print(f"raw numbers written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
