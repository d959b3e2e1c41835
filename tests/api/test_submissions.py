"""Accepting work: checked before anything exists, recorded once, dispatched by kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from prover.api import deps
from prover.config import Settings
from prover.service.db import session_scope
from prover.service.tables import Circuit, Grant, Job

Upload = Callable[..., httpx.Response]  # the ``upload`` fixture
Enqueued = list[tuple[str, str, str]]  # the ``enqueued`` fixture

Count = Callable[[type[Any]], int]


def test_a_model_is_accepted_once_and_its_compile_job_dispatched(
    alice: TestClient, upload: Upload, enqueued: Enqueued, count: Count
) -> None:
    response = upload(alice)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert set(accepted) == {"model_id", "circuit_id", "job_id", "state"}
    assert accepted["state"] == "compiling"
    assert enqueued == [(accepted["job_id"], "compile", "compile")]

    again = upload(alice)
    assert again.status_code == 202 and again.json() == accepted
    assert len(enqueued) == 1, "the same request twice is one job"
    assert count(Job) == 1 and count(Circuit) == 1


def test_compile_options_reach_the_job_and_name_another_circuit(
    alice: TestClient, upload: Upload, api_settings: Settings
) -> None:
    default = upload(alice).json()
    tuned = upload(alice, tolerance="0.05", reusable_verifier="true", strategy="ezkl-default")
    assert tuned.status_code == 202, tuned.text
    assert tuned.json()["circuit_id"] != default["circuit_id"]
    with session_scope(api_settings.sqlalchemy_url()) as session:
        job = session.scalar(select(Job).where(Job.id == tuned.json()["job_id"]))
        assert job is not None
        options = job.params["options"]
    assert options["tolerance"] == 0.05 and options["reusable_verifier"] is True
    assert options["strategy"] == "ezkl-default" and options["input_visibility"] == "public"


def test_a_bad_model_is_422_and_creates_nothing(
    alice: TestClient, upload: Upload, enqueued: Enqueued, count: Count
) -> None:
    response = upload(alice, model=b"not an onnx file")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_model" and "tiny.onnx" in error["message"]
    assert enqueued == [] and count(Job) == count(Circuit) == count(Grant) == 0
    assert alice.get("/v1/models").json()["items"] == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("input_visibility", "secret"),
        ("param_visibility", "open"),
        ("tolerance", "-1"),
        ("tolerance", "abc"),
        ("tolerance", "inf"),  # would turn the accuracy check off
        ("tolerance", "nan"),
        ("tolerance", "1.5"),
        ("lookup_margin", "0.5"),
        ("lookup_margin", "1e308"),
        ("lookup_margin", "inf"),
        ("strategy", "guess"),
        ("objective", "speed"),
        ("reusable_verifier", "maybe"),
    ],
)
def test_a_bad_compile_option_is_422_naming_it(
    alice: TestClient, upload: Upload, enqueued: Enqueued, count: Count, field: str, value: str
) -> None:
    response = upload(alice, **{field: value})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and field in error["message"], error
    assert enqueued == [] and count(Job) == 0


def test_a_missing_model_part_is_invalid_request(alice: TestClient) -> None:
    response = alice.post("/v1/models", data={"tolerance": "0.1"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and "model" in error["message"]


def test_work_on_a_circuit_still_compiling_is_409(
    alice: TestClient, upload: Upload, enqueued: list
) -> None:
    accepted = upload(alice).json()
    circuit = accepted["circuit_id"]
    proof = alice.post(f"/v1/circuits/{circuit}/proofs", json={"input": [[1.0, 2.0, 3.0, 4.0]]})
    assert proof.status_code == 409, proof.text
    error = proof.json()["error"]
    assert error["code"] == "conflict" and "compiling" in error["message"]
    assert error["job_id"] == accepted["job_id"] and error["state"] == "compiling"
    deploy = alice.post(f"/v1/circuits/{circuit}/deployments", json={"force": True})
    assert deploy.status_code == 409 and deploy.json()["error"]["job_id"] == accepted["job_id"]
    run = alice.post(
        "/v1/training/runs",
        json={"circuit_id": circuit, "weights": [0.0], "batches": [{"x": [1], "y": [1]}]},
    )
    assert run.status_code == 409
    assert len(enqueued) == 1, "only the compile job"


def test_a_job_the_broker_refuses_fails_and_answers_503(
    app: FastAPI,
    alice: TestClient,
    upload: Upload,
    api_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    enqueued: Enqueued,
) -> None:
    """The real dispatcher, with a broker that refuses: the job and its circuit fail (no
    job waits forever), and the same request later gets a new job."""

    def refuse(job_id: str, kind: str, settings: Settings) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(deps, "enqueue", refuse)
    recorder = app.dependency_overrides.pop(deps.dispatcher)
    response = upload(alice)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "unavailable"
    with session_scope(api_settings.sqlalchemy_url()) as session:
        (job,) = session.query(Job).all()
        circuit = session.get(Circuit, job.subject_id)
        assert job.state == "failed" and job.error is not None
        assert "broker down" in job.error["message"]
        assert circuit is not None and circuit.state == "failed"

    app.dependency_overrides[deps.dispatcher] = recorder
    retried = upload(alice)
    assert retried.status_code == 202 and retried.json()["job_id"] != job.id
    assert [kind for _, kind, _ in enqueued] == ["compile"]
