"""Client input is answered 4xx, never 5xx: one test for each cause an outside tester
found (schemathesis), and the status codes it found wrong."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from prover.api.app import create_app
from prover.config import Settings
from prover.service.db import session_scope
from prover.service.tables import Circuit, Job, Proof

Upload = Callable[..., httpx.Response]  # the ``upload`` fixture

JSON_ROUTES = [
    "/v1/circuits/c/proofs",
    "/v1/circuits/c/deployments",
    "/v1/proofs/p/submissions",
    "/v1/training/runs",
    "/v1/training/verify-chain",
]
LISTS = ["/v1/models", "/v1/circuits", "/v1/proofs", "/v1/jobs", "/v1/training/runs"]


def test_a_form_field_in_place_of_the_model_file_is_invalid_request(alice: TestClient) -> None:
    """The validation error carries a ValueError in its context: the body must be JSON."""
    response = alice.post("/v1/models", data={"model": "abc"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and "model" in error["message"]
    assert error["errors"][0]["loc"] == ["body", "model"]


def test_bytes_in_a_validation_error_are_text(alice: TestClient) -> None:
    response = alice.get("/v1/jobs", params={"limit": b"\xff\xfe".decode("latin-1")})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("path", JSON_ROUTES)
def test_a_json_endpoint_sent_text_is_415(alice: TestClient, path: str) -> None:
    response = alice.post(path, content=b'{"input": [[1]]}', headers={"content-type": "text/plain"})
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type" and "application/json" in error["message"]


def test_an_empty_body_of_any_type_is_no_body(alice: TestClient) -> None:
    """An optional body left out is fine, whatever content type the client declares."""
    response = alice.post("/v1/circuits/c/deployments", headers={"content-type": "text/plain"})
    assert response.status_code == 404


@pytest.mark.parametrize("path", LISTS)
def test_a_cursor_past_64_bits_is_422(alice: TestClient, path: str) -> None:
    for cursor in (2**63, 10**30, -1):
        response = alice.get(path, params={"cursor": cursor})
        assert response.status_code == 422, (cursor, response.text)
        assert "cursor" in response.json()["error"]["message"]
    assert alice.get(path, params={"cursor": 2**63 - 1}).status_code == 200


def test_an_input_number_beyond_float64_is_invalid_input_naming_its_place(
    alice: TestClient, ready_circuit: str
) -> None:
    huge = "1" + "0" * 400
    body = '{"input": [[1, 2, ' + huge + ", 4]]}"
    response = alice.post(
        f"/v1/circuits/{ready_circuit}/proofs",
        content=body.encode(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and "[0][2]" in error["message"], error
    assert error["position"] == "[0][2]"


def test_a_chunked_body_over_the_limit_is_413(tmp_path) -> None:
    small = Settings(
        data_dir=tmp_path / "d",
        database_url=f"sqlite:///{tmp_path / 'p.db'}",
        redis_url="redis://127.0.0.1:1/0",
        max_request_bytes=1000,
    )

    def chunks() -> Iterator[bytes]:
        yield b'{"input": ['
        for _ in range(200):
            yield b"[0.0, 0.0],"
        yield b"[0.0]]}"

    with TestClient(create_app(small)) as client:
        response = client.post(
            "/v1/training/verify-chain",
            content=chunks(),
            headers={"content-type": "application/json", "Authorization": "Bearer x"},
        )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "request_too_large"


def test_verifying_a_proof_still_proving_is_409(
    alice: TestClient, ready_circuit: str, api_settings: Settings
) -> None:
    accepted = alice.post(
        f"/v1/circuits/{ready_circuit}/proofs", json={"input": [[1.0, 2.0, 3.0, 4.0]]}
    ).json()
    for method, path in (
        ("post", f"/v1/proofs/{accepted['proof_id']}/verify"),
        ("get", f"/v1/proofs/{accepted['proof_id']}/ezkl"),
    ):
        response = alice.request(method, path)
        assert response.status_code == 409, (path, response.text)
        error = response.json()["error"]
        assert error["code"] == "conflict" and error["state"] == "proving"
        assert error["job_id"] == accepted["job_id"]
    with session_scope(api_settings.sqlalchemy_url()) as session:
        assert session.scalar(select(Proof.state)) == "proving"


def test_a_wrong_method_is_405_naming_every_allowed_one(alice: TestClient) -> None:
    for path, allowed in (("/v1/models", "GET, POST"), ("/v1/training/runs", "GET, POST")):
        response = alice.request("PUT", path)
        assert response.status_code == 405
        assert response.headers["allow"] == allowed
    response = alice.delete("/v1/jobs/x")
    assert response.status_code == 405 and response.headers["allow"] == "GET"


def test_a_batch_of_a_broken_model_is_refused_before_any_batching(
    alice: TestClient, model_bytes: bytes, upload: Upload, count: Callable[[type[Any]], int]
) -> None:
    """Found by the fuzzer: an upload asking for a batch was batched (and checked by
    onnx) before intake, so a model onnx refuses was a 500. Intake comes first now."""
    import onnx

    broken = onnx.load_from_string(model_bytes)
    broken.ir_version = 0
    response = upload(alice, broken.SerializeToString(), batch_size="2")
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_model"
    assert count(Circuit) == 0 and count(Job) == 0
