"""Prometheus metrics of the service (one registry per process; see ``prover.api.metrics``
for how the API aggregates workers on the same host)."""

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
