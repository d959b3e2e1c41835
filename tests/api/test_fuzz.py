"""The API under generated requests: schemathesis runs as an outside tester would (every
phase: examples, coverage, fuzzing, stateful; every check) against the app's own OpenAPI
document. No client input may be answered 5xx, and every answer must be documented
(status code, content type, headers; a 405 names the allowed methods).

In process (ASGI), on the test's SQLite database, with a real API key that owns real
records: the tiny model compiled by ezkl and a proof of it, made as a client and a worker
would. The generated ids in paths are those records' half the time, and the stateful
phase follows the document's links from each list to its first item's routes, so that the
routes that take an id are exercised past 404. No worker runs the work the fuzzer asks
for: its jobs fail at once. Deterministic and bounded in examples per operation, so that a
run takes the same time (about 50 s on 2 cores, the compile and proof included) and finds
the same.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema
from schemathesis.engine.core import EventStream
from schemathesis.engine.recorder import ScenarioRecorder

from prover.api.deps import Dispatcher, dispatcher
from prover.config import Settings
from prover.service import jobs
from prover.service.accepting import Accepted
from prover.service.execution import run_job
from prover.service.keys import create_key
from prover.service.kinds import job_kind

Upload = Callable[..., httpx.Response]  # the ``upload`` fixture

pytestmark = pytest.mark.slow

EXAMPLES = 15  # per operation and phase
NOT_CHECKED = [
    # A schema-valid request may still be refused: random bytes are not an ONNX model.
    "positive_data_acceptance",
    # Timing on a shared CI machine says nothing about the API.
    "max_response_time",
]
EXPECTED = {
    # 503 is right here: no broker and no worker run in these tests (documented).
    ("GET /health", "not_a_server_error"),
}
# Errors only a route that found its record answers (the input checked against a circuit).
RECORD_ERRORS = ("invalid_input", "conflict")
# The routes that must get past 404 with the real ids: answered 2xx or one of those.
ID_ROUTES = [
    "GET /v1/models/{model_id}",
    "GET /v1/circuits/{circuit_id}",
    "POST /v1/circuits/{circuit_id}/proofs",
    "POST /v1/circuits/{circuit_id}/deployments",
    "GET /v1/proofs/{proof_id}",
    "GET /v1/proofs/{proof_id}/ezkl",
    "POST /v1/proofs/{proof_id}/verify",
    "POST /v1/proofs/{proof_id}/submissions",
    "GET /v1/jobs/{job_id}",
]


@pytest.fixture
def api_settings(tmp_path: Path) -> Settings:
    """The API fixtures' settings with the rate limit raised far past the fuzzer's pace:
    the limiter runs on every request, and thousands of requests from one key are not
    answered 429 after the first burst (which would test nothing else)."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'prover.db'}",
        redis_url="redis://127.0.0.1:1/0",
        measure_top=1,
        rate_limit_per_s=100_000,
        rate_limit_burst=100_000,
    )


@pytest.fixture
def fuzz_key(client: TestClient, api_settings: Settings) -> str:
    return create_key(api_settings.sqlalchemy_url(), "fuzz")["key"]


@pytest.fixture
def records(app: FastAPI, fuzz_key: str, api_settings: Settings, upload: Upload) -> dict[str, str]:
    """The fuzz key's real records, each by its path parameter's name: the tiny model,
    its circuit compiled by ezkl (with ezkl's own settings: the quickest compile), a proof
    and the proof's job (ended: a wait on it answers at once)."""
    headers = {"Authorization": f"Bearer {fuzz_key}"}
    with contextlib.closing(TestClient(app, headers=headers)) as fuzz:
        return made_records(fuzz, api_settings, upload)


def made_records(fuzz: TestClient, settings: Settings, upload: Upload) -> dict[str, str]:
    compiled = upload(fuzz, strategy="ezkl-default").json()
    assert run_job(compiled["job_id"], "fuzz@test", settings).state == "succeeded"
    body = {"input": [[0.5, -1.0, 0.25, 2.0]]}
    proof = fuzz.post(f"/v1/circuits/{compiled['circuit_id']}/proofs", json=body).json()
    assert run_job(proof["job_id"], "fuzz@test", settings).state == "succeeded"
    assert fuzz.get(f"/v1/proofs/{proof['proof_id']}").json()["state"] == "ready"
    return {
        "model_id": compiled["model_id"],
        "circuit_id": compiled["circuit_id"],
        "proof_id": proof["proof_id"],
        "job_id": proof["job_id"],
    }


def fuzz_config(records: dict[str, str]) -> SchemathesisConfig:
    """Each path parameter named in ``records`` draws its record's id half the time."""
    return SchemathesisConfig.from_dict(
        {
            "dictionaries": {name: {"values": [value]} for name, value in records.items()},
            "parameters": {
                f"path.{name}": {"dictionary": name, "probability": 0.5} for name in records
            },
        }
    )


def ending_dispatcher(settings: Settings) -> Dispatcher:
    """Jobs fail at once, as the queue's dispatcher fails a job the broker refuses (no
    worker runs here): a wait on a job the fuzzer made answers at once, rather than after
    the ``wait`` it drew (up to 60 s)."""
    error = {"code": "unavailable", "message": "no worker runs in this test"}

    def dispatch(accepted: Accepted) -> dict[str, Any]:
        response, to_enqueue = accepted
        for job_id, kind in to_enqueue:
            jobs.abandon(settings.sqlalchemy_url(), job_id, error, job_kind(kind).on_end)
        return response

    return dispatch


Answer = tuple[str, int, str]  # method and path template, status, error code ("": none)


def answer_of(recorder: ScenarioRecorder, case_id: str) -> Answer:
    """What one request was answered; status 0 when it got no answer."""
    interaction = recorder.interactions[case_id]
    route = f"{interaction.request.method} {recorder.cases[case_id].value.operation.path}"
    if interaction.response is None:
        return route, 0, ""
    try:
        code = json.loads(interaction.response.content)["error"]["code"]
    except (ValueError, TypeError, KeyError):
        code = ""
    return route, interaction.response.status_code, code


def outcomes_of(stream: EventStream) -> tuple[Counter[str], Counter[Answer]]:
    """Each distinct failure (operation, check, status, title: how to reproduce it) with
    its count, and each distinct answer with its count."""
    found: Counter[str] = Counter()
    answers: Counter[Answer] = Counter()
    for event in stream:
        if isinstance(event, events.NonFatalError):  # in process, a 500 raises here
            found[f"{event.label}: raised {event.value!r}"] += 1
        if isinstance(event, events.FatalError):
            found[f"schemathesis failed: {event.exception!r}"] += 1
        if not isinstance(event, events.ScenarioFinished):
            continue
        recorder = event.recorder
        answers.update(answer_of(recorder, case_id) for case_id in recorder.interactions)
        for case_id, checks in recorder.checks.items():
            for check in checks:
                info = check.failure_info
                if info is None or (recorder.label, check.name) in EXPECTED:
                    continue
                interaction = recorder.interactions.get(case_id)
                response = interaction.response if interaction else None
                status = response.status_code if response else None
                found[
                    f"{recorder.label} {check.name} [{status}] {info.failure.title}\n"
                    f"    {info.code_sample[:500]}"
                ] += 1
    return found, answers


def test_no_request_is_a_server_error_or_undocumented(
    app: FastAPI, fuzz_key: str, records: dict[str, str], api_settings: Settings
) -> None:
    app.dependency_overrides[dispatcher] = lambda: ending_dispatcher(api_settings)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=fuzz_config(records))
    schema.config.update(headers={"Authorization": f"Bearer {fuzz_key}"}, continue_on_failure=True)
    schema.config.generation.update(max_examples=EXAMPLES, deterministic=True)
    schema.config.checks.update(included_check_names=["all"], excluded_check_names=NOT_CHECKED)
    # The event stream never ends by itself (tests/integration/test_events.py reads it).
    found, answers = outcomes_of(from_schema(schema.exclude(path="/v1/events")).execute())
    assert sum(answers.values()) > 500, f"only {sum(answers.values())} answers: did the phases run?"
    assert not found, "\n".join(f"{count}x {failure}" for failure, count in found.items())
    found_record = {
        route for route, status, code in answers if status < 300 or code in RECORD_ERRORS
    }
    assert set(ID_ROUTES) <= found_record, f"never past 404: {set(ID_ROUTES) - found_record}"
