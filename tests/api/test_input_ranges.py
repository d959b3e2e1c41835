"""Inputs past what a circuit represents: refused at the request (422 naming the input,
the position and the allowed range), never queued; a lookup beyond the circuit's tables
fails the job before the prover spins on it; and an ezkl panic (a pyo3
``PanicException``, a ``BaseException``: an input past ezkl's integers in a job queued
before the check) fails the job at once with its own error, never held until its lease
lapses."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from helpers.models import make_dynamic_cnn
from prover.circuits.ranges import input_limit
from prover.circuits.witness import generate_witness, write_input
from prover.config import Settings
from prover.errors import InvalidInputError
from prover.service.db import session_scope
from prover.service.execution import run_job
from prover.service.tables import Job
from prover.store import ArtifactStore

Count = Callable[[type[Any]], int]


def _compiled(client: TestClient, settings: Settings, model: bytes, name: str) -> dict:
    files = {"model": (name, model, "application/octet-stream")}
    compiled = client.post("/v1/models", files=files, data={"strategy": "ezkl-default"})
    assert compiled.status_code == 202, compiled.text
    assert run_job(compiled.json()["job_id"], "w@test", settings).state == "succeeded"
    store = ArtifactStore(settings.data_dir)
    return dict(store.read_record("circuits", compiled.json()["circuit_id"]))


@pytest.fixture
def tiny_circuit(alice: TestClient, api_settings: Settings, model_bytes: bytes) -> dict:
    return _compiled(alice, api_settings, model_bytes, "tiny.onnx")


def _prove(client: TestClient, circuit_id: str, values: list[float]) -> httpx.Response:
    return client.post(f"/v1/circuits/{circuit_id}/proofs", json={"input": [values]})


def test_inputs_past_the_circuit_are_refused_naming_input_position_and_range(
    alice: TestClient, tiny_circuit: dict, count: Count
) -> None:
    limit = input_limit(tiny_circuit["settings"])
    jobs = count(Job)
    for value in (1e38, -1e308, 1e20, limit * 1.001):
        refused = _prove(alice, tiny_circuit["id"], [0.1, 0.2, value, 0.3])
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "invalid_input"
        assert error["input"] == "x" and error["position"] == "[0][2]"
        assert error["allowed"] == pytest.approx([-limit, limit])
        assert f"{limit:.10g}" in error["message"]
    assert count(Job) == jobs  # nothing queued
    assert _prove(alice, tiny_circuit["id"], [0.1, 0.2, limit * 0.5, 0.3]).status_code == 202


def test_the_limit_is_where_ezkl_itself_stops_reading_the_input(
    tiny_circuit: dict, api_settings: Settings, tmp_path: Path
) -> None:
    """Just past the limit ezkl's own witness step fails: the check refuses nothing ezkl
    could prove (the same bound held for linear, x * 0.001-first and sigmoid models)."""
    store = ArtifactStore(api_settings.data_dir)
    compiled = store.path("circuits", tiny_circuit["id"]) / "model.compiled"
    limit = input_limit(tiny_circuit["settings"])
    sample = [np.array([limit * 1.001, 0.0, 0.0, 0.0])]
    with pytest.raises(InvalidInputError):
        generate_witness(compiled, write_input(tmp_path / "in.json", [sample]), tmp_path / "w.json")


def test_calibration_past_ezkls_integers_is_refused_before_the_compile(
    alice: TestClient, model_bytes: bytes, count: Count
) -> None:
    calibration = json.dumps({"input_data": [[0.1, 0.2, 0.3, 0.4, 0.5, 1e308, 0.7, 0.8]]})
    files = {
        "model": ("tiny.onnx", model_bytes, "application/octet-stream"),
        "calibration": ("cal.json", calibration.encode(), "application/json"),
    }
    refused = alice.post("/v1/models", files=files)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_input" and error["position"] == "[0][1]", error
    assert "2^127" in error["message"]
    assert count(Job) == 0


def test_a_lookup_past_the_tables_fails_the_job_before_proving(
    alice: TestClient, api_settings: Settings, tmp_path: Path
) -> None:
    """The sigmoid's table covers what calibration saw; 64x that input passes ezkl's
    witness step but would leave the prover spinning (minutes, on a 2^15 circuit)."""
    model = make_dynamic_cnn(tmp_path / "cnn.onnx").read_bytes()
    circuit = _compiled(alice, api_settings, model, "cnn.onnx")
    values = (np.random.default_rng(0).uniform(-1, 1, 16) * 64).tolist()
    asked = alice.post(f"/v1/circuits/{circuit['id']}/proofs", json={"input": values})
    assert asked.status_code == 202, asked.text
    assert run_job(asked.json()["job_id"], "w@test", api_settings).state == "failed"
    job = alice.get(f"/v1/jobs/{asked.json()['job_id']}").json()
    assert job["error"]["code"] == "invalid_input" and job["attempts"] == 1, job
    assert "beyond" in job["error"]["message"] and "Sigmoid" in job["error"]["message"]


def test_an_ezkl_panic_fails_the_job_at_once_with_its_reason(
    alice: TestClient, api_settings: Settings, tiny_circuit: dict
) -> None:
    asked = _prove(alice, tiny_circuit["id"], [0.5, 0.1, 0.2, 0.3])
    assert asked.status_code == 202, asked.text
    with session_scope(api_settings.sqlalchemy_url()) as session:
        job = session.scalars(select(Job).where(Job.id == asked.json()["job_id"])).one()
        job.params = {**job.params, "input": [[1e38, 0.1, 0.2, 0.3]]}
    assert run_job(asked.json()["job_id"], "w@test", api_settings).state == "failed"
    record = alice.get(f"/v1/jobs/{asked.json()['job_id']}").json()
    assert record["state"] == "failed" and record["attempts"] == 1, record
    assert record["error"]["code"] == "circuit_error", record["error"]
    assert "ezkl panicked" in record["error"]["message"], record["error"]
