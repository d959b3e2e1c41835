"""The workers' sweep: jobs that no message will ever run are sent to the queue again.

Two ways a queued or running job loses its way, both found every lease period by each
worker's sweep thread, so no operator step is needed:

* its worker died: the lease lapses and ``jobs.requeue_lapsed`` puts it back (a
  compare-and-set per job, so of several sweepers only one sends it);
* its message is gone: the broker lost it (the local Redis keeps nothing on disk, so a
  restart empties the queues), its worker died holding it before the job was claimed,
  or a task gave up without recording. The broker is the truth: with kombu's Redis
  transport a waiting message is an entry of the list named after its queue, and a
  delivered but unacknowledged one an entry of the ``unacked`` hash (with its delivery
  time in ``unacked_index``). For a job still *queued*, a live worker holds its message
  only for a retry's countdown (at most the longest backoff or lease); one held longer
  belongs to a dead worker (Redis would give it back only after the 4 h visibility
  timeout). A job queued for longer than ``PROVER_REQUEUE_AFTER_S`` with no such live
  message is sent again. One sweeper acts per period (a Redis lock), and a duplicate
  message is harmless anyway: claims are exclusive.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterable
from typing import Any

import redis

from prover.config import Settings
from prover.service import events, jobs, webhooks
from prover.service.kinds import QUEUES
from prover.worker.app import enqueue

log = logging.getLogger("prover.worker")
LOCK = "prover:sweep:lost-messages"
# kombu's Redis transport: one list per queue and priority step, and the unacked hash.
_PRIORITY_SEPARATOR = "\x06\x16"
_UNACKED, _UNACKED_INDEX = "unacked", "unacked_index"


def message_job_id(payload: bytes | str) -> str | None:
    """The job id in a stored kombu message of the ``prover.run_job`` task, else None."""
    try:
        message = json.loads(payload)
        if isinstance(message, list):  # an unacked entry: [message, exchange, routing key]
            message = message[0]
        if message.get("headers", {}).get("task") != "prover.run_job":
            return None
        args = json.loads(base64.b64decode(message["body"]))[0]  # protocol 2: [args, ...]
        return str(args[0])
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None


def _queue_lists(queues: Iterable[str]) -> list[str]:
    return [
        name
        for queue in queues
        for name in (queue, *(f"{queue}{_PRIORITY_SEPARATOR}{p}" for p in range(1, 10)))
    ]


def live_job_ids(broker: redis.Redis, held_s: float) -> set[str]:
    """Ids of jobs with a message in the broker: waiting, or delivered less than
    ``held_s`` ago and not yet acknowledged."""
    payloads: list[Any] = []
    for name in _queue_lists(QUEUES):
        payloads += broker.lrange(name, 0, -1)
    recent: list[Any] = list(broker.zrangebyscore(_UNACKED_INDEX, time.time() - held_s, "+inf"))
    if recent:
        payloads += [p for p in broker.hmget(_UNACKED, recent) if p is not None]
    return {job_id for p in payloads if (job_id := message_job_id(p)) is not None}


def resend_lost(settings: Settings, broker: redis.Redis) -> list[str]:
    """Send again the jobs queued too long with no message; their ids. Does nothing when
    another worker holds this period's lock."""
    period = max(1, int(settings.job_lease_s))
    if not broker.set(LOCK, "1", nx=True, ex=period):
        return []
    # Seen before or after the database read: a message moving from a list to the
    # unacked hash (or a job sent just now) is in one of the two readings.
    held_s = max(settings.transient_backoff_max_s, settings.job_lease_s + 1) + period
    live = live_job_ids(broker, held_s)
    waiting = jobs.queued_longer_than(settings.sqlalchemy_url(), settings.requeue_after_s)
    if not waiting:
        return []
    live |= live_job_ids(broker, held_s)
    lost = [(job_id, kind) for job_id, kind in waiting if job_id not in live]
    for job_id, kind in lost:
        log.warning("job %s has been queued with no message in the broker; sent again", job_id)
        enqueue(job_id, kind, settings)
    return [job_id for job_id, _ in lost]


def sweep_once(settings: Settings, broker: redis.Redis) -> None:
    """One period's sweep: lapsed leases, lost messages, events (and finished webhook
    deliveries) past their retention."""
    for job_id, kind in jobs.requeue_lapsed(settings.sqlalchemy_url()):
        log.warning("job %s lost its worker; enqueued again", job_id)
        enqueue(job_id, kind, settings)
    resend_lost(settings, broker)
    events.prune(settings.sqlalchemy_url(), settings.event_retention_s)
    webhooks.prune(settings.sqlalchemy_url(), settings.event_retention_s)
