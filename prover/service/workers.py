"""What each worker says of itself: the pool's capacity, /health's hosts and the metrics
targets all read it.

Every lease period a worker writes ``prover:worker:<name>`` in Redis (its host, queues,
memory for one job, cores, GPU, cache and metrics address), expiring three periods after
it stops, so a host that died or lost its link drops out of the list by itself. Redis,
not the database: the list is about now, and every host already reaches the broker.
"""

from __future__ import annotations

import json
import os
import socket
from itertools import groupby
from typing import Any

import redis

from prover.circuits.sandbox import machine_memory
from prover.config import Settings
from prover.store import ArtifactStore, now_iso

PREFIX = "prover:worker:"


def own_capacity(settings: Settings) -> int:
    """This process's memory for one job: ``PROVER_WORKER_MEMORY_BYTES``, else the machine's."""
    return settings.worker_memory_bytes or machine_memory()


def host_address(settings: Settings) -> str:
    """This host as others reach it: ``PROVER_WORKER_ADDRESS``, else its host name."""
    return settings.worker_address or socket.gethostname()


def describe(settings: Settings, name: str, queues: list[str], concurrency: int) -> dict[str, Any]:
    """This worker as it is now (the cache is measured, not remembered)."""
    from prover.circuits.backend import gpu_prove_cli  # ezkl: loaded on workers only

    host = host_address(settings)
    port = settings.worker_metrics_port
    return {
        "name": name,
        "host": host,
        "queues": sorted(queues),
        "concurrency": concurrency,
        "memory_bytes": own_capacity(settings),
        "cpus": os.cpu_count() or 1,
        "gpu": os.environ.get("CUDA_VISIBLE_DEVICES") if gpu_prove_cli() else None,
        "cache": ArtifactStore.from_settings(settings).cache_usage(),
        "metrics_url": f"http://{host}:{port}/metrics" if port else None,
        "seen": now_iso(),
    }


def advertise(broker: redis.Redis, info: dict[str, Any], settings: Settings) -> None:
    """Say (again) what this worker is; the key lapses three lease periods after the
    worker stops refreshing it."""
    ttl = max(3, int(3 * settings.job_lease_s))
    broker.set(f"{PREFIX}{info['name']}", json.dumps(info), ex=ttl)


def live_workers(settings: Settings) -> list[dict[str, Any]]:
    """Every worker whose key has not lapsed, by host and name; none when Redis is away."""
    try:
        broker = redis.Redis.from_url(settings.redis_url, socket_timeout=2)
        values = [broker.get(key) for key in broker.scan_iter(f"{PREFIX}*", count=100)]
    except redis.RedisError:
        return []
    workers = [json.loads(v) for v in values if v is not None]
    return sorted(workers, key=lambda w: (w["host"], w["name"]))


def by_host(workers: list[dict[str, Any]], answering: set[str]) -> list[dict[str, Any]]:
    """Workers grouped by host, each marked whether it answered a ping just now."""
    return [
        {"host": host, "workers": [{**w, "answering": w["name"] in answering} for w in group]}
        for host, group in groupby(workers, key=lambda w: w["host"])
    ]


def metrics_targets(workers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prometheus HTTP service discovery: one target per worker that serves metrics."""
    return [
        {
            "targets": [w["metrics_url"].split("/")[2]],
            "labels": {"host": w["host"], "worker": w["name"]},
        }
        for w in workers
        if w.get("metrics_url")
    ]
