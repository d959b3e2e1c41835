"""The Python client over real HTTP: the API as a subprocess (no worker: nothing here
needs a job to run), its health report, lists with filters, and errors as the project's
types, sync and async."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.aio import run
from helpers.models import make_mlp
from helpers.stack import Service, private_redis
from prover.client import AsyncClient, Client, ServiceError
from prover.errors import AuthError, ConflictError, NotFoundError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    data = tmp_path_factory.mktemp("client-http")
    with private_redis() as redis_url:
        service = Service(data, f"sqlite:///{data / 'prover.db'}", redis_url)
        try:
            yield service.start_api()
        finally:
            service.stop()


def test_health_lists_and_errors(api: Service, tmp_path: Path) -> None:
    with Client(api.url, api.key(), timeout=30) as client:
        report = client.health()  # 503: no worker answers, and that is a report
        assert report["status"] != "ok" and report["workers"] == 0, report
        accepted = client.submit_model(make_mlp(tmp_path / "mlp.onnx"), strategy="ezkl-default")
        circuit_id = accepted["circuit_id"]
        compiles = client.list_jobs(kind="compile", subject_id=circuit_id, limit=5)
        assert [j["job_id"] for j in compiles["items"]] == [accepted["job_id"]]
        assert client.list_jobs(kind="deploy", subject_id=circuit_id)["items"] == []
        assert client.job(accepted["job_id"], wait=0.5)["state"] == "queued"
        with pytest.raises(NotFoundError) as missing:
            client.circuit("no-such-circuit")
        assert (missing.value.status, missing.value.code) == (404, "not_found")
        with pytest.raises(ConflictError):  # still compiling (no worker)
            client.request_proof(circuit_id, items=[[[0.0] * 4], [[1.0] * 4]])
        with pytest.raises(ServiceError) as invalid:
            client.request_proof(circuit_id, [[0.0] * 4], settle=True)  # settle needs batching
        assert (invalid.value.status, invalid.value.code) == (422, "invalid_request")
    with Client(api.url, "not-a-key") as stranger, pytest.raises(AuthError):
        stranger.list_models()


def test_the_async_client_over_http(api: Service) -> None:
    async def calls() -> tuple[dict[str, Any], dict[str, Any]]:
        async with AsyncClient(api.url, api.key()) as client:
            return await client.health(), await client.list_circuits(limit=1)

    health, page = run(calls())
    assert health["workers"] == 0 and set(page) == {"items", "next_cursor"}
