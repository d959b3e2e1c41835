"""Waking a waiting request on a Redis message (a job's end, a new event) rather than
polling the database often; without Redis the waiter polls every ``POLL_S``: an outage
costs latency, not the answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

log = logging.getLogger("prover.api")

POLL_S = 0.25  # how often a waiter reads the database when Redis cannot wake it


async def subscribed(client: aioredis.Redis, channel: str) -> PubSub | None:
    """A subscription to ``channel``; None when Redis does not answer."""
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(channel)
    except redis.RedisError:
        await close_subscription(pubsub)
        return None
    return pubsub


async def woken(pubsub: PubSub | None, remaining: float) -> PubSub | None:
    """Wait for a message (a second at most), or ``POLL_S`` without a subscription.
    Returns the subscription, None once Redis has dropped it."""
    if pubsub is not None:
        try:
            await pubsub.get_message(ignore_subscribe_messages=True, timeout=min(remaining, 1.0))
            return pubsub
        except redis.RedisError as exc:
            log.warning("wait: Redis dropped (%s); polling the database", exc)
            await close_subscription(pubsub)
    await asyncio.sleep(min(remaining, POLL_S))
    return None


async def close_subscription(pubsub: PubSub | None) -> None:
    """Close a subscription, whatever state its connection is in."""
    if pubsub is not None:
        with contextlib.suppress(redis.RedisError):
            await pubsub.aclose()
