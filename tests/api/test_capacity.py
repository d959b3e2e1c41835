"""A proof that needs more memory than a worker may give it is refused before any job,
naming the need and the capacity (the circuit's estimate against PROVER_WORKER_MEMORY_BYTES)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from fastapi.testclient import TestClient

from helpers.stack import private_redis
from prover.config import Settings
from prover.service.capacity import pool_capacity
from prover.service.tables import Job, Proof
from prover.service.workers import PREFIX, advertise, describe
from prover.store import ArtifactStore

GIB = 2**30


def _with_estimate(settings: Settings, circuit_id: str, peak: int) -> None:
    store = ArtifactStore(settings.data_dir)
    record = store.read_record("circuits", circuit_id)
    store.save_record("circuits", circuit_id, {**record, "estimate": {"peak_memory_bytes": peak}})


def test_a_proof_over_the_workers_memory_is_refused_with_need_and_capacity(
    alice: TestClient,
    ready_circuit: str,
    api_settings: Settings,
    count: Callable[[type[Any]], int],
) -> None:
    api_settings.worker_memory_bytes = 1 * GIB
    _with_estimate(api_settings, ready_circuit, 3 * GIB)
    refused = alice.post(f"/v1/circuits/{ready_circuit}/proofs", json={"input": [[1, 2, 3, 4]]})
    assert refused.status_code == 413, refused.text
    error = refused.json()["error"]
    assert error["code"] == "over_capacity"
    assert (error["need_bytes"], error["capacity_bytes"]) == (3 * GIB, 1 * GIB)
    assert "3.00 GiB" in error["message"] and "segments" in error["message"]
    assert count(Proof) == 0 and count(Job) == 1  # only the compile job of the fixture

    api_settings.worker_memory_bytes = 4 * GIB  # a worker that has it: accepted
    accepted = alice.post(f"/v1/circuits/{ready_circuit}/proofs", json={"input": [[1, 2, 3, 4]]})
    assert accepted.status_code == 202, accepted.text


def test_the_check_uses_the_largest_capacity_a_live_worker_advertises(
    alice: TestClient, ready_circuit: str, api_settings: Settings
) -> None:
    with private_redis() as url:
        api_settings.redis_url, api_settings.worker_memory_bytes = url, 1 * GIB
        _with_estimate(api_settings, ready_circuit, 3 * GIB)
        broker = redis.Redis.from_url(url)
        small = describe(api_settings, "small@host", ["prove"], 1)  # this process's 1 GiB
        advertise(broker, small, api_settings)
        big = api_settings.model_copy(update={"worker_memory_bytes": 8 * GIB})
        advertise(broker, describe(big, "big@host", ["prove"], 1), big)
        assert pool_capacity(api_settings) == 8 * GIB
        body = {"input": [[1, 2, 3, 4]]}
        accepted = alice.post(f"/v1/circuits/{ready_circuit}/proofs", json=body)
        assert accepted.status_code == 202, accepted.text
        broker.delete(f"{PREFIX}big@host")  # the big worker is gone
        fresh = alice.post(f"/v1/circuits/{ready_circuit}/proofs", json={**body, "fresh": True})
        assert fresh.status_code == 413 and fresh.json()["error"]["capacity_bytes"] == GIB
