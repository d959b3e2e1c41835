"""A worker host's own Prometheus endpoint (``PROVER_WORKER_METRICS_PORT``).

On one machine the API's /metrics reads every process's samples from the shared
``PROMETHEUS_MULTIPROC_DIR``; a worker on another host has no such directory in common,
so it serves its own: its pool processes' job and store metrics (written to its own
multiprocess directory, which ``prover worker`` sets before prometheus_client loads) and
its cache, measured at scrape time. /metrics/targets lists these endpoints for
Prometheus's HTTP service discovery.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from prover.store import ArtifactStore


class CacheCollector(Collector):
    """The bytes and entries this host keeps, and its limit (``PROVER_CACHE_BYTES``)."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        usage = self.store.cache_usage()
        yield GaugeMetricFamily("prover_cache_bytes", "Bytes in this host's cache.", usage["bytes"])
        yield GaugeMetricFamily(
            "prover_cache_entries", "Entries in this host's cache.", usage["entries"]
        )
        if usage["limit_bytes"] is not None:
            yield GaugeMetricFamily(
                "prover_cache_limit_bytes", "PROVER_CACHE_BYTES.", usage["limit_bytes"]
            )


def serve_metrics(port: int, store: ArtifactStore) -> None:
    """Serve this worker's metrics on every interface at ``port`` (a thread)."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    registry.register(CacheCollector(store))
    start_http_server(port, addr="0.0.0.0", registry=registry)
