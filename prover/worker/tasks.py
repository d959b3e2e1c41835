"""The one task: run a job by id. Delivery is at least once; ``run_job`` records once."""

from __future__ import annotations

import logging
import threading
import time
from functools import lru_cache
from typing import Any

import redis
from celery import Task
from celery.signals import worker_init, worker_process_init, worker_ready, worker_shutdown

from prover.config import get_settings, mode_line
from prover.errors import is_transient
from prover.proving.composite import sweep_work
from prover.service.db import forget_inherited_connections, migrate
from prover.service.execution import backoff_s, lease_keeper, run_job
from prover.service.workers import advertise, describe
from prover.store import ArtifactStore
from prover.worker.app import EVENTS_CHANNEL, QUEUES, app, enqueue, job_channel, time_limit
from prover.worker.metrics import serve_metrics
from prover.worker.sweep import sweep_once

log = logging.getLogger("prover.worker")
_sweeping = threading.Event()


@app.task(name="prover.run_job", bind=True, max_retries=None)
def run_job_task(self: Task, job_id: str, failing_since: float | None = None) -> str:
    settings = get_settings()
    try:
        outcome = run_job(job_id, self.request.hostname or "worker", settings)
    except Exception as exc:
        # Could not even claim or record: the database is away. Nothing can be written on
        # the job, so the message carries when the fault began, for the same deadline.
        since = failing_since or time.time()
        if not is_transient(exc) or time.time() - since > settings.transient_deadline_s:
            raise  # the job stays as it is: the sweep sends it again (see ``sweep``)
        countdown = backoff_s(self.request.retries + 1, settings)
        log.warning("job %s: %s; trying again in %.0f s", job_id, exc, countdown)
        raise self.retry(
            exc=exc, countdown=countdown, args=[job_id], kwargs={"failing_since": since}
        ) from exc
    for next_id, kind in outcome.follow_ups:  # a run's next step, a proof's segments
        enqueue(next_id, kind, settings)
    if outcome.retry_in_s is not None:
        # Held by a live worker (a duplicate delivery), released after a transient error,
        # or waiting for its children: look again later, so the message outlives the job.
        raise self.retry(countdown=outcome.retry_in_s, args=[job_id], kwargs={})
    _announce(job_id)
    return outcome.state


def _announce(job_id: str) -> None:
    """Wake clients waiting on the job, and event streams (they read the job or their
    events from the database)."""
    try:
        _publisher().publish(job_channel(job_id), "ended")
        _publisher().publish(EVENTS_CHANNEL, job_id)
    except redis.RedisError:
        log.warning("could not announce the end of job %s; waiting clients will poll", job_id)


@lru_cache
def _publisher() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url, socket_timeout=5)


def _sweep(stop: threading.Event, name: str, queues: list[str], concurrency: int) -> None:
    """Every lease period, say what this worker is (``workers``) and send again the jobs
    whose worker died or whose message the broker lost (``sweep``)."""
    settings = get_settings()
    broker = redis.Redis.from_url(settings.redis_url, socket_timeout=10)
    while True:
        try:
            advertise(broker, describe(settings, name, queues, concurrency), settings)
            sweep_once(settings, broker)
        except Exception as exc:  # the database or broker away: the next period tries again
            log.warning("sweep failed (%s); trying again next period", exc)
        if stop.wait(settings.job_lease_s):
            return


@worker_init.connect
def _migrate(**_kwargs: object) -> None:
    log.info(mode_line(get_settings()))
    migrate(get_settings().sqlalchemy_url())


@worker_process_init.connect
def _warm_up(**_kwargs: object) -> None:
    """In each pool process: drop database connections inherited from the parent, import
    the heavy modules (ezkl, onnxruntime, web3) and start the lease helper before the
    first job arrives."""
    forget_inherited_connections()
    import prover.chain.onchain
    import prover.circuits.compiler
    import prover.proving.proofs  # noqa: F401

    settings = get_settings()
    lease_keeper(settings.sqlalchemy_url(), settings.job_lease_s).start()


@worker_ready.connect
def _start_sweep(sender: Any, **_kwargs: object) -> None:
    # The sender is the worker's consumer: its node name, queues and pool size.
    queues = sorted(sender.app.amqp.queues.consume_from)
    if set(queues).isdisjoint(QUEUES):
        return  # a webhook worker (worker.deliveries): it runs no job, offers no capacity
    settings = get_settings()
    longest = max(time_limit(settings, queue) for queue in QUEUES)
    store = ArtifactStore.from_settings(settings)
    removed = store.sweep_staging(older_than_s=2 * longest)
    removed += sweep_work(store, older_than_s=2 * longest)
    if removed:
        log.info("removed %d staging directories left by killed or abandoned jobs", removed)
    if settings.worker_metrics_port:
        serve_metrics(settings.worker_metrics_port, store)
    args = (_sweeping, sender.hostname, queues, sender.controller.concurrency)
    threading.Thread(target=_sweep, args=args, daemon=True, name="lease-sweep").start()


@worker_shutdown.connect
def _stop_sweep(**_kwargs: object) -> None:
    _sweeping.set()
