"""Webhook deliveries on the ``webhooks`` queue: the dispatcher and the delivery task.

A worker that consumes the ``webhooks`` queue (``prover worker --queues webhooks --pool
threads``, which ``prover up`` starts) runs the dispatcher in a thread: every
``PROVER_WEBHOOK_POLL_S`` it claims the deliveries that are due (new ones, and retries
whose delay is over) and sends one ``prover.deliver_webhook`` message each. The database
is the truth (``service.webhooks``): a message lost with the broker, or with a worker that
died, is made again once its claim lapses, and a duplicate message sends nothing.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from prover.config import Settings, get_settings
from prover.service import webhooks
from prover.service.webhook_delivery import attempt
from prover.worker.app import WEBHOOK_QUEUE, app

log = logging.getLogger("prover.worker")
_stopping = threading.Event()


@app.task(name="prover.deliver_webhook")
def deliver_webhook_task(delivery_id: str, claim: str) -> str:
    """One attempt of a delivery, if ``claim`` is still its own; its state after."""
    settings = get_settings()
    db = settings.sqlalchemy_url()
    job = webhooks.take(db, delivery_id, claim)
    if job is None:
        return "not ours"
    outcome = attempt(job, settings.webhook_timeout_s, settings.webhook_allow_private)
    return webhooks.record(db, delivery_id, outcome, settings)


def dispatch_once(settings: Settings) -> int:
    """Send a message for each delivery due now; how many."""
    claimed = webhooks.claim_due(settings.sqlalchemy_url())
    for delivery_id, claim in claimed:
        app.send_task("prover.deliver_webhook", args=[delivery_id, claim], queue=WEBHOOK_QUEUE)
    return len(claimed)


def dispatch(stop: threading.Event) -> None:
    """Dispatch until ``stop``: at once again after a busy round, else after a pause."""
    settings = get_settings()
    while not stop.is_set():
        try:
            sent = dispatch_once(settings)
        except Exception as exc:  # the database or broker away: the claims lapse, retried
            log.warning("webhook dispatch failed (%s); trying again", exc)
            sent = 0
        if not sent:
            stop.wait(settings.webhook_poll_s)


@worker_ready.connect
def _start_dispatcher(sender: Any, **_kwargs: object) -> None:
    if WEBHOOK_QUEUE in sender.app.amqp.queues.consume_from:
        threading.Thread(target=dispatch, args=(_stopping,), daemon=True, name="webhooks").start()


@worker_shutdown.connect
def _stop_dispatcher(**_kwargs: object) -> None:
    _stopping.set()
