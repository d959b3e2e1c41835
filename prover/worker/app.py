"""The Celery app on Redis, and the producer side (``enqueue``) used by the API.

Reliability settings, on purpose:

* ``task_acks_late`` + ``task_reject_on_worker_lost``: a task is acknowledged only after it
  ran; if its process dies (SIGKILL, out of memory) the message goes back on the queue.
* ``worker_prefetch_multiplier = 1``: a worker holds one message at a time, so long jobs do
  not wait behind each other on a busy worker while another idles.
* ``visibility_timeout`` (``PROVER_VISIBILITY_TIMEOUT_S``, default 4 h) longer than the
  longest job: Redis re-delivers an unacknowledged message only after it, which is how the
  message of a worker that vanished whole comes back. Sooner than that, the job itself is
  recovered: its lease lapses and a sweep in every worker re-enqueues it (see ``tasks``).
* Time limits per queue (hard from settings, soft at 90%).
* Retries with backoff only for transient errors (database, broker or chain unreachable);
  a user's error fails the job at once with its reason.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from prover.config import Settings, get_settings
from prover.service.kinds import QUEUES, QueueName, job_kind

# Webhook deliveries have a queue of their own, consumed by workers of their own (a pool of
# threads: deliveries wait on the network), so that a slow receiver delays no job.
WEBHOOK_QUEUE = "webhooks"


def time_limit(settings: Settings, queue: QueueName) -> int:
    return {
        "compile": settings.compile_time_limit_s,
        "prove": settings.prove_time_limit_s,
        "chain": settings.chain_time_limit_s,
    }[queue]


def make_app(settings: Settings) -> Celery:
    tasks = ["prover.worker.tasks", "prover.worker.deliveries"]
    app = Celery("prover", broker=settings.redis_url, include=tasks)
    visibility = settings.visibility_timeout_s
    app.conf.update(
        task_ignore_result=True,  # job state lives in the database
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={
            "visibility_timeout": visibility,
            # How often workers look for unacknowledged messages older than the timeout.
            "unacked_restore_interval": max(1, min(30, visibility // 10)),
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        task_queues=[Queue(name) for name in (*QUEUES, WEBHOOK_QUEUE)],
        task_default_queue="prove",
        worker_send_task_events=True,  # for Flower
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    return app


app = make_app(get_settings())


# Where every job's end is announced too: event streams wake on it to read their events.
EVENTS_CHANNEL = "prover:events"


def job_channel(job_id: str) -> str:
    """The Redis pub/sub channel on which a job's end is announced (to waiting clients)."""
    return f"prover:job:{job_id}"


def enqueue(job_id: str, kind: str, settings: Settings | None = None) -> None:
    """Send a job to the queue its kind declares, with that queue's time limits."""
    settings = settings or get_settings()
    queue = job_kind(kind).queue
    hard = time_limit(settings, queue)
    app.send_task(
        "prover.run_job",
        args=[job_id],
        queue=queue,
        time_limit=hard,
        soft_time_limit=int(hard * 0.9),
    )
