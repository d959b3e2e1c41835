"""Strict types at the API's edge: a JSON boolean is not a number nor a number a boolean,
NaN and infinity are no numbers, and an integer query parameter is an integer literal.
Each is refused with 422 before anything is recorded or enqueued."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from prover.service.tables import Job, Proof

Count = Callable[[type[Any]], int]  # the ``count`` fixture


@pytest.mark.parametrize(
    ("values", "position", "kind"),
    [
        ([[True, 0.1, 0.2, 0.3]], "[0][0]", "a boolean"),
        ([[0.1, 0.2, 0.3, False]], "[0][3]", "a boolean"),
        ([[0.1, "0.2", 0.3, 0.4]], "[0][1]", "a string"),
    ],
)
def test_an_input_value_that_is_no_number_is_422_naming_its_position(
    alice: TestClient, ready_circuit: str, count: Count, values: Any, position: str, kind: str
) -> None:
    refused = alice.post(f"/v1/circuits/{ready_circuit}/proofs", json={"input": values})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_input" and error["position"] == position
    assert error["message"] == f"input 'x'{position} is {kind}, not a number"
    assert count(Proof) == 0 and count(Job) == 1  # the fixture's compile job alone


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/circuits/{circuit}/proofs", {"input": [[1, 2, 3, 4]], "fresh": 1}, "fresh"),
        ("/v1/circuits/{circuit}/proofs", {"input": [[1, 2, 3, 4]], "batching": 0}, "batching"),
        ("/v1/circuits/{circuit}/deployments", {"force": 0}, "force"),
        ("/v1/circuits/{circuit}/deployments", {"force": "true"}, "force"),
        ("/v1/proofs/{circuit}/submissions", {"commit_reveal": 0}, "commit_reveal"),
        ("/v1/training/runs", {"circuit_id": "c", "weights": [True], "batches": []}, "weights"),
    ],
)
def test_json_fields_are_of_their_own_type(
    alice: TestClient, ready_circuit: str, count: Count, path: str, body: Any, field: str
) -> None:
    refused = alice.post(path.format(circuit=ready_circuit), json=body)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_request" and f"body.{field}" in error["message"], error
    assert count(Job) == 1


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-1e400"])
def test_a_number_is_finite(alice: TestClient, number: str) -> None:
    """Python's json reads these (1e400 as infinity); JSON has no such numbers."""
    body = f'{{"circuit_id": "c", "weights": [{number}], "batches": []}}'
    headers = {"content-type": "application/json"}
    refused = alice.post("/v1/training/runs", content=body, headers=headers)
    assert refused.status_code == 422, refused.text
    assert "body.weights.0: Input should be a finite number" in refused.json()["error"]["message"]


@pytest.mark.parametrize("cursor", ["+0.0", "+0", "0.0", "0_0", " 0", "1e0"])
def test_an_integer_query_parameter_is_an_integer_literal(alice: TestClient, cursor: str) -> None:
    refused = alice.get("/v1/jobs", params={"cursor": cursor})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_request" and "query.cursor" in error["message"]
    assert alice.get("/v1/jobs", params={"limit": "+5"}).status_code == 422
    assert alice.get("/v1/proofs/p/ezkl", params={"segment": "+0"}).status_code == 422
    assert alice.get("/v1/jobs", params={"cursor": "0", "limit": "5"}).status_code == 200
