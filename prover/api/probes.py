"""Health and metrics: the database, the broker and the workers, as they answer now."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import func, select, text

from prover.config import Settings
from prover.service.db import session_scope
from prover.service.tables import Job
from prover.service.workers import by_host, live_workers
from prover.worker.app import QUEUES, app


def check(settings: Settings) -> dict[str, Any]:
    """Each part's answer, and the workers by host as they describe themselves; status
    is ok only when all answer and a worker is up."""
    report: dict[str, Any] = {}
    try:
        with session_scope(settings.sqlalchemy_url()) as session:
            session.execute(text("SELECT 1"))
        report["database"] = "ok"
    except Exception as exc:
        report["database"] = f"error: {exc}"
    try:
        redis.Redis.from_url(settings.redis_url, socket_timeout=2).ping()
        report["broker"] = "ok"
        replies = app.control.ping(timeout=1.0)
        report["workers"] = len(replies)
        report["worker_names"] = sorted(name for reply in replies for name in reply)
    except Exception as exc:
        report["broker"] = f"error: {exc}"
        report["workers"] = 0
        report["worker_names"] = []
    report["hosts"] = by_host(live_workers(settings), set(report["worker_names"]))
    healthy = report["database"] == report["broker"] == "ok" and report["workers"] > 0
    report["status"] = "ok" if healthy else "degraded"
    return report


class ServiceCollector(Collector):
    """Queue depths (Redis) and jobs by kind and state (database), read at scrape time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "prover_queue_depth", "Messages waiting in each queue.", labels=["queue"]
        )
        try:
            client = redis.Redis.from_url(self.settings.redis_url, socket_timeout=2)
            for queue in QUEUES:
                depth.add_metric([queue], client.llen(queue))
        except redis.RedisError:
            pass
        yield depth
        states = GaugeMetricFamily(
            "prover_jobs", "Jobs in the database by kind and state.", labels=["kind", "state"]
        )
        with session_scope(self.settings.sqlalchemy_url()) as session:
            rows = session.execute(
                select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state)
            ).all()
        for kind, state, count in rows:
            states.add_metric([kind, state], count)
        yield states


def metrics_text(settings: Settings) -> bytes:
    """Prometheus exposition: this process, workers on this host (multiprocess dir), and
    the service-wide gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
        output = generate_latest(registry)
    else:
        output = generate_latest(REGISTRY)
    service = CollectorRegistry()
    service.register(ServiceCollector(settings))
    return output + generate_latest(service)
