"""The API under generated requests: schemathesis runs as an outside tester would (every
phase: examples, coverage, fuzzing, stateful; every check) against the app's own OpenAPI
document. No client input may be answered 5xx, and every answer must be documented
(status code, content type, headers; a 405 names the allowed methods).

In process (ASGI), on the test's SQLite database, with a real API key; the dispatcher is
the recording fake, so accepted work is recorded, not run. Deterministic and bounded in
examples per operation, so that a run takes the same time (about 20 s) and finds the same.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from schemathesis.engine import events, from_schema

from prover.config import Settings
from prover.service.keys import create_key

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


@pytest.fixture
def api_settings(tmp_path: Path) -> Settings:
    """The API fixtures' settings with no rate limit: thousands of requests from one key
    would be answered 429 after the first burst, and test nothing else."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'prover.db'}",
        redis_url="redis://127.0.0.1:1/0",
        measure_top=1,
        rate_limit_per_s=0,
    )


def failures_of(stream: events.EventStream) -> tuple[Counter[str], int]:
    """Each distinct failure (operation, check, status, title: how to reproduce it) with
    its count, and the number of requests made."""
    found: Counter[str] = Counter()
    requests = 0
    for event in stream:
        if isinstance(event, events.NonFatalError):  # in process, a 500 raises here
            found[f"{event.label}: raised {event.value!r}"] += 1
        if isinstance(event, events.FatalError):
            found[f"schemathesis failed: {event.exception!r}"] += 1
        if not isinstance(event, events.ScenarioFinished):
            continue
        recorder = event.recorder
        requests += len(recorder.interactions)
        for case_id, checks in recorder.checks.items():
            for check in checks:
                info = check.failure_info
                if info is None or (recorder.label, check.name) in EXPECTED:
                    continue
                interaction = recorder.interactions.get(case_id)
                status = interaction.response.status_code if interaction else None
                found[
                    f"{recorder.label} {check.name} [{status}] {info.failure.title}\n"
                    f"    {info.code_sample[:500]}"
                ] += 1
    return found, requests


def test_no_request_is_a_server_error_or_undocumented(
    app: FastAPI, client: TestClient, api_settings: Settings
) -> None:
    key = create_key(api_settings.sqlalchemy_url(), "fuzz")["key"]
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.update(headers={"Authorization": f"Bearer {key}"}, continue_on_failure=True)
    schema.config.generation.update(max_examples=EXAMPLES, deterministic=True)
    schema.config.checks.update(included_check_names=["all"], excluded_check_names=NOT_CHECKED)
    found, requests = failures_of(from_schema(schema).execute())
    assert requests > 500, f"only {requests} requests: did the phases run?"
    assert not found, "\n".join(f"{count}x {failure}" for failure, count in found.items())
