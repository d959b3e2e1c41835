"""An input whose fixed-point value leaves ezkl's integer range makes ezkl panic in the
witness step (a pyo3 ``PanicException``, a ``BaseException``): the job fails at once with
its own error, never held until its lease lapses and counted as a lost worker."""

from __future__ import annotations

import contextlib

from fastapi import FastAPI
from fastapi.testclient import TestClient

from prover.config import Settings
from prover.service.execution import run_job
from prover.service.keys import create_key


def test_an_ezkl_panic_fails_the_job_at_once_with_its_reason(
    app: FastAPI, client: TestClient, api_settings: Settings, model_bytes: bytes
) -> None:
    key = create_key(api_settings.sqlalchemy_url(), "panics")["key"]
    with contextlib.closing(TestClient(app, headers={"Authorization": f"Bearer {key}"})) as c:
        files = {"model": ("tiny.onnx", model_bytes, "application/octet-stream")}
        compiled = c.post("/v1/models", files=files, data={"strategy": "ezkl-default"}).json()
        assert run_job(compiled["job_id"], "w@test", api_settings).state == "succeeded"
        asked = c.post(
            f"/v1/circuits/{compiled['circuit_id']}/proofs", json={"input": [[1e38, 0.1, 0.2, 0.3]]}
        )
        assert asked.status_code == 202, asked.text
        outcome = run_job(asked.json()["job_id"], "w@test", api_settings)
        assert outcome.state == "failed"
        job = c.get(f"/v1/jobs/{asked.json()['job_id']}").json()
    assert job["state"] == "failed" and job["attempts"] == 1, job
    assert job["error"]["code"] == "circuit_error", job["error"]
    assert "ezkl panicked" in job["error"]["message"], job["error"]
