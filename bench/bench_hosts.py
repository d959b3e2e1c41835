"""Proving across hosts (issue #24): the service on hosts that share nothing but the
network (network namespaces, tests/helpers/hosts.py: run as root), side by side in one
run:

* a model compiled in ``--segments`` segments (an MLP built here, ``--inputs``,
  ``--width``, ``--depth``) proven fresh through HTTP by one worker host, then by two,
  each worker on one core (``RAYON_NUM_THREADS=1``): wall from the request to the proof's
  job ending, and which host proved which segment. Goal: two hosts <= 0.6x one;
* the second host's first proof is a cold one: what it fetched from the object store
  (entries, bytes, seconds), read from its own metrics endpoint.

    sudo .venv/bin/python bench/bench_hosts.py --inputs 256 --width 256 --depth 4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from bench_segments import build_model, data
from common import MODELS_DIR, RESULTS, environment, format_table, write_json
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(MODELS_DIR.parent / "tests"))

from helpers.hosts import METRICS_PORT, Hosts, running_hosts
from helpers.stack import compile_model

GOAL = 0.6


def metric(hosts: Hosts, host: str, name: str) -> float:
    """The sum of a metric's samples on one worker host's own endpoint."""
    address = hosts.host(host).address
    text = httpx.get(f"http://{address}:{METRICS_PORT}/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    )


def prove(hosts: Hosts, key: str, circuit_id: str, input_obj: Any) -> dict[str, Any]:
    """One fresh proof through HTTP: wall seconds, and the host of each segment's job."""
    with hosts.connect(key) as api, hosts.http(key) as client:
        started = time.perf_counter()
        asked = api.request_proof(circuit_id, input_obj, fresh=True)
        parent = api.wait(asked["job_id"], timeout=7200)
        wall = time.perf_counter() - started
        listed = client.get("/v1/jobs", params={"limit": 100}).json()["items"]
    children = [j for j in listed if j.get("parent_id") == parent["job_id"]]
    return {
        "wall_s": wall,
        "segments_by": sorted(str(j["worker"]).split("@")[0] for j in children),
        "attempts": [j["attempts"] for j in [parent, *children]],
    }


def measure(hosts: Hosts, model: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Compile on h1 (every core), then prove on h1 alone and on h1 and h2 (one core each)."""
    key = hosts.key("bench")
    hosts.start_worker("h1")
    hosts.wait_workers(1)
    calibration = data(args.inputs, 8, seed=1)
    input_obj = data(args.inputs, 1, seed=2)["input_data"][0]
    started = time.perf_counter()
    with hosts.connect(key) as api:
        # The settings search (a segmented circuit's segments share one scale), one finalist.
        circuit_id = compile_model(api, model, calibration, segments=args.segments)["circuit_id"]
        segments = api.circuit(circuit_id)["record"]["segments"]
        logrows = [s["logrows"] for s in segments]
    compile_s = time.perf_counter() - started
    hosts.stop_worker("h1")
    os.environ["RAYON_NUM_THREADS"] = "1"  # each worker from here on: one core
    hosts.start_worker("h1", queues="compile,prove")
    hosts.wait_workers(1)
    one = prove(hosts, key, circuit_id, [input_obj])
    hosts.start_worker("h2", queues="compile,prove")
    hosts.wait_workers(2)
    two = prove(hosts, key, circuit_id, [input_obj])
    cold = {
        "fetched_entries": metric(hosts, "h2", "prover_store_fetches_total"),
        "fetched_mb": metric(hosts, "h2", "prover_store_fetched_bytes_total") / 1e6,
        "fetch_s": metric(hosts, "h2", "prover_store_fetch_seconds_sum"),
    }
    return {
        "model": f"mlp {args.inputs}-{args.width}x{args.depth}",
        "segments": args.segments,
        "segment_logrows": logrows,
        "compile_s": compile_s,
        "one_host": one,
        "two_hosts": two,
        "ratio": two["wall_s"] / one["wall_s"],
        "second_host_cold": cold,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=256)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--segments", type=int, default=2)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()
    os.environ.pop("RAYON_NUM_THREADS", None)
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp) / "mlp.onnx", args.inputs, args.width, args.depth)
        limits = {"PROVER_MAX_MODEL_BYTES": str(64 << 20), "PROVER_JOB_LEASE_S": "10"}
        with running_hosts(Path(tmp) / "hosts", 2, **limits) as hosts:
            row = measure(hosts, model, args)
    cold = row["second_host_cold"]
    headers = ["model", "segments (logrows)", "1 host s", "2 hosts s", "ratio", "goal"]
    headers += ["h2 cold fetch s", "h2 fetched MB"]
    cells = [
        row["model"],
        f"{row['segments']} ({','.join(map(str, row['segment_logrows']))})",
        f"{row['one_host']['wall_s']:.1f}",
        f"{row['two_hosts']['wall_s']:.1f}",
        f"{row['ratio']:.2f}",
        f"≤ {GOAL}",
        f"{cold['fetch_s']:.2f}",
        f"{cold['fetched_mb']:.1f}",
    ]
    print(format_table(headers, [cells], args.markdown))
    print(json.dumps({k: row[k] for k in ("one_host", "two_hosts")}, indent=1))
    write_json(RESULTS / "hosts.json", {"environment": environment(load), "results": [row]})


if __name__ == "__main__":
    main()
