"""Reading: the job view, waiting for a job's end, pagination, health and metrics."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select

from prover.api.schemas import JobView
from prover.config import Settings
from prover.service.db import session_scope
from prover.service.kinds import KINDS
from prover.service.tables import Job

Upload = Callable[..., httpx.Response]  # the ``upload`` fixture


def test_the_job_view_has_its_documented_shape(alice: TestClient, upload: Upload) -> None:
    accepted = upload(alice).json()
    view = alice.get(f"/v1/jobs/{accepted['job_id']}").json()
    JobView.model_validate(view)
    assert view["job_id"] == accepted["job_id"] and view["subject_id"] == accepted["circuit_id"]
    assert view["kind"] == "compile" and view["kind"] in KINDS
    assert (view["state"], view["phase"], view["progress"], view["attempts"]) == (
        "queued",
        "queued",
        0.0,
        0,
    )
    assert view["error"] is None and view["result"] is None and view["timings"] == {}
    assert view["created_at"] and view["started_at"] is None


def test_a_wait_answers_when_the_job_ends(
    alice: TestClient, upload: Upload, api_settings: Settings
) -> None:
    """Redis does not answer here, so the wait polls the database: each read must be a
    transaction of its own to see the commit made meanwhile."""
    job_id = upload(alice).json()["job_id"]
    started = time.monotonic()
    still = alice.get(f"/v1/jobs/{job_id}", params={"wait": 0.3}).json()
    assert still["state"] == "queued" and time.monotonic() - started >= 0.3

    def finish() -> None:
        with session_scope(api_settings.sqlalchemy_url()) as session:
            job = session.scalar(select(Job).where(Job.id == job_id))
            assert job is not None
            job.state, job.result = "succeeded", {"done": True}

    timer = threading.Timer(0.3, finish)
    timer.start()
    started = time.monotonic()
    ended = alice.get(f"/v1/jobs/{job_id}", params={"wait": 20}).json()
    timer.join()
    assert ended["state"] == "succeeded" and ended["result"] == {"done": True}
    assert time.monotonic() - started < 5
    assert alice.get(f"/v1/jobs/{job_id}", params={"wait": 61}).status_code == 422


def test_lists_are_newest_first_pages(alice: TestClient, upload: Upload) -> None:
    circuits = [
        upload(alice, tolerance=str(tolerance)).json()["circuit_id"]
        for tolerance in (0.1, 0.2, 0.3)
    ]
    first = alice.get("/v1/circuits", params={"limit": 2}).json()
    assert [c["circuit_id"] for c in first["items"]] == circuits[::-1][:2]
    assert first["next_cursor"] is not None
    rest = alice.get("/v1/circuits", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [c["circuit_id"] for c in rest["items"]] == circuits[:1]
    assert rest["next_cursor"] is None
    assert {"state", "job_id", "model_id", "model_name"} <= set(first["items"][0])

    (model,) = alice.get("/v1/models").json()["items"]
    assert model["name"] == "tiny.onnx" and model["parameter_count"] == 10
    assert len(alice.get("/v1/jobs").json()["items"]) == 3
    assert alice.get("/v1/proofs").json() == {"items": [], "next_cursor": None}
    assert alice.get("/v1/training/runs").json() == {"items": [], "next_cursor": None}
    for limit in (0, 101):
        response = alice.get("/v1/jobs", params={"limit": limit})
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "invalid_request" and "limit" in error["message"]


def test_jobs_filter_by_kind_and_subject_in_pages(
    alice: TestClient, bob: TestClient, upload: Upload, ready_circuit: str
) -> None:
    other = upload(alice, tolerance="0.2").json()["circuit_id"]
    for _ in range(3):
        deploy = alice.post(f"/v1/circuits/{ready_circuit}/deployments", json={"force": True})
        assert deploy.status_code == 202, deploy.text
    bob.post(f"/v1/circuits/{ready_circuit}/deployments", json={})
    everything = alice.get("/v1/jobs", params={"limit": 100}).json()["items"]
    wanted = [j for j in everything if (j["kind"], j["subject_id"]) == ("deploy", ready_circuit)]
    assert len(wanted) == 3
    query = {"kind": "deploy", "subject_id": ready_circuit, "limit": 1}
    got: list[dict] = []
    cursor = None
    while True:
        page = alice.get("/v1/jobs", params={**query, **({"cursor": cursor} if cursor else {})})
        got += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert got == wanted
    compiles = alice.get("/v1/jobs", params={"subject_id": other}).json()["items"]
    assert [(j["kind"], j["subject_id"]) for j in compiles] == [("compile", other)]
    assert bob.get("/v1/jobs", params={"kind": "deploy", "subject_id": ready_circuit}).json()[
        "items"
    ] == [j for j in bob.get("/v1/jobs").json()["items"] if j["kind"] == "deploy"]
    for bad in (
        {"kind": "nope"},
        {"subject_id": ""},
        {"subject_id": "a/b"},
        {"subject_id": "x" * 65},
    ):
        response = alice.get("/v1/jobs", params=bad)
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["error"]["code"] == "invalid_request"


def test_health_names_each_part_and_is_503_without_a_broker(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 503
    report = response.json()
    assert report["status"] == "degraded" and report["database"] == "ok"
    assert report["broker"].startswith("error") and report["workers"] == 0


def test_metrics_are_prometheus_text(alice: TestClient, upload: Upload) -> None:
    upload(alice)
    response = alice.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'prover_jobs{kind="compile",state="queued"} 1.0' in response.text
