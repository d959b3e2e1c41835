"""POST /v1/estimates: the compile form in, the predicted cost out; nothing is stored and
no job is made; bad input is a 4xx naming the problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from prover.circuits import estimate
from prover.config import Settings
from prover.store import ArtifactStore

Enqueued = list[tuple[str, str, str]]
Upload = Callable[..., httpx.Response]  # the ``upload`` fixture


def post(client: TestClient, model: bytes, **form: str) -> tuple[int, dict]:
    files = {"model": ("tiny.onnx", model, "application/octet-stream")}
    response = client.post("/v1/estimates", files=files, data=form)
    return response.status_code, response.json()


@pytest.mark.slow
def test_an_estimate_predicts_without_compiling(
    alice: TestClient,
    model_bytes: bytes,
    upload: Upload,
    api_settings: Settings,
    enqueued: Enqueued,
) -> None:
    status, body = post(alice, model_bytes, strategy="ezkl-default")
    assert status == 200, body
    assert body["basis"] == "ezkl-default" and body["cached"] is False
    assert body["logrows"] > 0 and body["pk_bytes"] > 0
    assert body["peak_memory_bytes"] > body["pk_bytes"]
    assert body["worker_memory_bytes"] > 0 and body["fits"] is True
    assert enqueued == [], "an estimate makes no job"
    store = ArtifactStore(api_settings.data_dir)
    assert not store.exists("circuits", body["circuit_id"])

    accepted = upload(alice, strategy="ezkl-default").json()
    assert accepted["circuit_id"] == body["circuit_id"], "the circuit a compile would make"


def test_a_worker_too_small_is_reported(
    alice: TestClient,
    model_bytes: bytes,
    upload: Upload,
    api_settings: Settings,
    tmp_path: Path,
) -> None:
    """A circuit already compiled answers from its record's estimate; against a worker of
    1 MB it does not fit."""
    api_settings.worker_memory_bytes = 2**20
    accepted = upload(alice, strategy="ezkl-default").json()
    store = ArtifactStore(api_settings.data_dir)
    shape = {"num_rows": 3000, "run_args": {"logrows": 12, "num_inner_cols": 2}}
    record = {
        "id": accepted["circuit_id"],
        "type": "circuit",
        "pk_bytes": 5_000_000,
        "search": {"chosen": "ezkl-default"},
        "estimate": estimate.predict(shape),
    }
    store.save_record("circuits", accepted["circuit_id"], record)
    status, body = post(alice, model_bytes, strategy="ezkl-default")
    assert status == 200, body
    assert body["cached"] is True and body["basis"] == "compiled"
    assert body["fits"] is False and body["worker_memory_bytes"] == 2**20
    assert body["measured_pk_bytes"] == 5_000_000


@pytest.mark.parametrize(
    ("model", "form", "status", "code"),
    [
        (b"not an onnx file", {}, 422, "invalid_model"),
        (None, {"tolerance": "-1"}, 422, "invalid_input"),
        (None, {"strategy": "fastest"}, 422, "invalid_input"),
    ],
)
def test_bad_input_is_4xx_naming_it(
    alice: TestClient,
    model_bytes: bytes,
    model: bytes | None,
    form: dict[str, str],
    status: int,
    code: str,
) -> None:
    got, body = post(alice, model or model_bytes, **form)
    assert got == status, body
    assert body["error"]["code"] == code


def test_an_estimate_needs_a_key(client: TestClient, model_bytes: bytes) -> None:
    assert post(client, model_bytes)[0] == 401
