"""Prometheus metrics of the service (one registry per process; ``prover.api.probes``
aggregates the processes of one host, and a worker host serves its own: see
``prover.worker.metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PHASE_SECONDS = Histogram(
    "prover_job_phase_seconds",
    "Seconds a job spent in each phase (queued, witness, proving, search, setup, ...).",
    ["kind", "phase"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600, float("inf")),
)
JOB_SECONDS = Histogram(
    "prover_job_seconds",
    "Seconds a worker spent running a job, by outcome.",
    ["kind", "state"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600, float("inf")),
)
JOB_FAILURES = Counter(
    "prover_job_failures_total", "Jobs that ended failed, by kind and error code.", ["kind", "code"]
)
STORE_FETCHES = Counter(
    "prover_store_fetches_total",
    "Entries this host fetched from the object store into its cache, by collection.",
    ["collection"],
)
STORE_FETCHED_BYTES = Counter(
    "prover_store_fetched_bytes_total",
    "Bytes this host fetched from the object store (entries and SRS files).",
)
STORE_FETCH_SECONDS = Histogram(
    "prover_store_fetch_seconds",
    "Seconds to fetch one entry (download and digest check), by collection.",
    ["collection"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, float("inf")),
)
CACHE_EVICTIONS = Counter(
    "prover_cache_evictions_total", "Cached entries removed to keep within PROVER_CACHE_BYTES."
)
