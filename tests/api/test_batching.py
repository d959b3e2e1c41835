"""Dynamic batching at the API: which batch a request joins, when its job is sent, and what
is refused, with no worker (the batch job stays queued; the recording dispatcher shows what
would be enqueued). The proofs themselves: tests/integration/test_batching_service.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from helpers.stack import postgres_database
from prover.config import Settings
from prover.service import batching, grants
from prover.service.db import migrate, session_scope
from prover.service.keys import create_key
from prover.service.tables import Batch, BatchItem, Circuit, utcnow
from prover.store import ArtifactStore

Upload = Callable[..., httpx.Response]  # the ``upload`` fixture
Enqueued = list[tuple[str, str, str]]  # the ``enqueued`` fixture

N = 4


@pytest.fixture
def batch_circuit(alice: TestClient, upload: Upload, api_settings: Settings) -> str:
    """The tiny model's batch-4 circuit, marked ready by hand with its record's shapes."""
    accepted = upload(alice, batch_size=str(N))
    assert accepted.status_code == 202, accepted.text
    circuit_id = accepted.json()["circuit_id"]
    store = ArtifactStore(api_settings.data_dir)
    model = store.read_record("models", accepted.json()["model_id"])
    record = {
        "id": circuit_id,
        "type": "circuit",
        "model_id": model["id"],
        "inputs": model["inputs"],
        "outputs": model["outputs"],
        "logrows": 10,
        "settings": {"input_scale": 7, "decomp_base": 16384, "decomp_legs": 2},
    }
    store.save_record("circuits", circuit_id, record)
    with session_scope(api_settings.sqlalchemy_url()) as session:
        row = session.get(Circuit, circuit_id)
        assert row is not None
        row.state = "ready"
    return circuit_id


def _ask(client: TestClient, circuit_id: str, value: float, **body: object) -> dict:
    answer = client.post(
        f"/v1/circuits/{circuit_id}/proofs",
        json={"input": [[value, 0.5, -0.5, 1.0]], "batching": True, **body},
    )
    assert answer.status_code == 202, answer.text
    return answer.json()


def test_a_keys_requests_fill_one_batch_whose_job_is_sent_again_when_full(
    alice: TestClient, batch_circuit: str, enqueued: Enqueued
) -> None:
    first = _ask(alice, batch_circuit, 0.1)

    def sent() -> list[tuple[str, str, str]]:
        return [e for e in enqueued if e[1] == "prove_batch"]

    assert sent() == [(first["job_id"], "prove_batch", "prove")]  # it waits the window
    joined = [_ask(alice, batch_circuit, v) for v in (0.2, 0.3)]
    assert {j["batch_id"] for j in joined} == {first["batch_id"]}
    assert {j["job_id"] for j in joined} == {first["job_id"]} and len(sent()) == 1
    again = _ask(alice, batch_circuit, 0.2)  # the same request: the same proof, no new item
    assert again["proof_id"] == joined[0]["proof_id"] and len(sent()) == 1
    full = _ask(alice, batch_circuit, 0.4)
    assert full["batch_id"] == first["batch_id"]
    assert sent()[1:] == [(first["job_id"], "prove_batch", "prove")]  # no need to wait now
    after = _ask(alice, batch_circuit, 0.5)
    assert after["batch_id"] != first["batch_id"] and after["job_id"] != first["job_id"]
    assert alice.get(f"/v1/proofs/{first['proof_id']}").json()["state"] == "proving"


def test_another_keys_requests_never_join_the_batch(
    alice: TestClient,
    bob: TestClient,
    upload: Upload,
    batch_circuit: str,
    api_settings: Settings,
) -> None:
    assert upload(bob, batch_size=str(N)).json()["circuit_id"] == batch_circuit
    mine, theirs = _ask(alice, batch_circuit, 0.1), _ask(bob, batch_circuit, 0.1)
    assert mine["batch_id"] != theirs["batch_id"] and mine["proof_id"] != theirs["proof_id"]
    with session_scope(api_settings.sqlalchemy_url()) as session:
        owners = session.execute(select(Batch.id, Batch.owner)).all()
    assert len({owner for _, owner in owners}) == 2
    assert bob.get(f"/v1/proofs/{mine['proof_id']}").status_code == 404


def test_a_batch_whose_window_is_over_takes_no_more_requests(
    alice: TestClient, batch_circuit: str, api_settings: Settings
) -> None:
    first = _ask(alice, batch_circuit, 0.1)
    with session_scope(api_settings.sqlalchemy_url()) as session:
        past = utcnow() - timedelta(seconds=1)
        session.execute(update(Batch).values(closes_at=past))
    late = _ask(alice, batch_circuit, 0.2)
    assert late["batch_id"] != first["batch_id"]
    with session_scope(api_settings.sqlalchemy_url()) as session:
        given_up = session.get(Batch, first["batch_id"])
        assert given_up is not None and given_up.open_key is None and given_up.size == 1
        items = session.scalars(select(BatchItem.batch_id)).all()
    assert sorted(items) == sorted([first["batch_id"], late["batch_id"]])


def test_batching_is_refused_where_it_cannot_apply(
    alice: TestClient, batch_circuit: str, ready_circuit: str
) -> None:
    item = [[0.1, 0.2, 0.3, 0.4]]
    single = alice.post(
        f"/v1/circuits/{ready_circuit}/proofs", json={"input": item, "batching": True}
    )
    assert single.status_code == 422 and "batch_size" in single.json()["error"]["message"]
    plain = alice.post(f"/v1/circuits/{batch_circuit}/proofs", json={"input": item})
    assert plain.status_code == 422 and "batching" in plain.json()["error"]["message"]
    cases = [
        {"items": [item] * N, "batching": True},
        {"input": item, "settle": True},
        {"input": [[0.1, 0.2]], "batching": True},  # one item has 4 values
    ]
    for body in cases:
        answer = alice.post(f"/v1/circuits/{batch_circuit}/proofs", json=body)
        assert answer.status_code == 422, (body, answer.text)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated metadata database of each kind the service runs on."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'race.db'}"
        migrate(url)
        yield url
        return
    with postgres_database() as url:
        migrate(url)
        yield url


def test_concurrent_requests_fill_batches_one_after_another(
    database: str, batch_circuit: str, api_settings: Settings
) -> None:
    """16 requests of one key at the same moment, straight at the service (no HTTP): each
    lands in exactly one batch, and the batches fill one after another (4 of 4)."""
    store = ArtifactStore(api_settings.data_dir)
    settings = api_settings.model_copy(update={"database_url": database})
    key = create_key(database, "racer")["key_id"]
    with session_scope(database) as session:
        session.add(
            Circuit(id=batch_circuit, model_id="m", model_name="m", state="ready", job_id="j")
        )
        grants.grant(session, key, "circuit", batch_circuit)

    def ask(i: int) -> dict:
        item = [[i / 16, 0.5, -0.5, 1.0]]
        return batching.request_batched(settings, store, key, batch_circuit, item)[0]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, range(16)))
    with session_scope(database) as session:
        batches = session.scalars(select(Batch)).all()
        items = session.scalars(select(BatchItem)).all()
    assert sorted(b.size for b in batches) == [N] * 4
    assert len(items) == 16 and len({i.proof_id for i in items}) == 16
    by_batch = {b.id: b.job_id for b in batches}
    assert all(by_batch[a["batch_id"]] == a["job_id"] for a in answers)
