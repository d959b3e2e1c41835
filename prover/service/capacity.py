"""What one worker may give one proof, as the workers advertise it.

Each worker keeps a key ``prover:capacity:<name>`` in Redis (its memory for one job,
refreshed every lease period, expiring when it stops doing so); a proof request is checked
against the largest live one, so a pool with one big worker accepts what only that
worker can prove. With no worker advertising (none started yet, or Redis away), the
configured ``PROVER_WORKER_MEMORY_BYTES`` (else this machine's memory) stands in.
"""

from __future__ import annotations

import redis

from prover.circuits.sandbox import machine_memory
from prover.config import Settings

PREFIX = "prover:capacity:"


def own_capacity(settings: Settings) -> int:
    """This process's memory for one job: ``PROVER_WORKER_MEMORY_BYTES``, else the machine's."""
    return settings.worker_memory_bytes or machine_memory()


def advertise(broker: redis.Redis, name: str, settings: Settings) -> None:
    """Say (again) what this worker can take; the key lapses three lease periods after
    the worker stops refreshing it."""
    broker.set(f"{PREFIX}{name}", own_capacity(settings), ex=max(3, int(3 * settings.job_lease_s)))


def pool_capacity(settings: Settings) -> int:
    """The largest memory a live worker advertises, else this process's own setting."""
    try:
        broker = redis.Redis.from_url(settings.redis_url, socket_timeout=2)
        values = [broker.get(key) for key in broker.scan_iter(f"{PREFIX}*", count=100)]
    except redis.RedisError:
        values = []
    advertised = [int(v) for v in values if v is not None]
    return max(advertised) if advertised else own_capacity(settings)
