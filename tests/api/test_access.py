"""Who may call what: a key is required, and another key's ids do not exist (404)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient

from prover.config import Settings
from prover.service.keys import create_key, revoke_key

Upload = Callable[..., httpx.Response]  # the ``upload`` fixture

ROUTES = [
    ("get", "/v1/models"),
    ("get", "/v1/jobs/0"),
    ("get", "/v1/training/runs"),
    ("post", "/v1/circuits/0/proofs"),
    ("post", "/v1/proofs/0/verify"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_request_without_a_valid_key_is_401(
    client: TestClient, api_settings: Settings, method: str, path: str
) -> None:
    revoked = create_key(api_settings.sqlalchemy_url(), "gone")
    revoke_key(api_settings.sqlalchemy_url(), revoked["key_id"])
    for headers, says in (
        ({}, "needs an API key"),
        ({"Authorization": "Bearer pk_wrong"}, "unknown API key"),
        ({"Authorization": f"Bearer {revoked['key']}"}, "revoked"),
    ):
        response = client.request(method, path, headers=headers, json={"input": [[1]]})
        assert response.status_code == 401, response.text
        error = response.json()["error"]
        assert error["code"] == "unauthorized" and says in error["message"]


def test_another_keys_ids_are_404_and_absent_from_its_lists(
    alice: TestClient, bob: TestClient, upload: Upload
) -> None:
    accepted = upload(alice).json()
    for path in (
        f"/v1/models/{accepted['model_id']}",
        f"/v1/circuits/{accepted['circuit_id']}",
        f"/v1/jobs/{accepted['job_id']}",
    ):
        assert alice.get(path).status_code == 200, path
        response = bob.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    proof = bob.post(f"/v1/circuits/{accepted['circuit_id']}/proofs", json={"input": [[1] * 4]})
    assert proof.status_code == 404
    deploy = bob.post(f"/v1/circuits/{accepted['circuit_id']}/deployments")
    assert deploy.status_code == 404
    for kind in ("models", "circuits", "jobs"):
        assert len(alice.get(f"/v1/{kind}").json()["items"]) == 1
        assert bob.get(f"/v1/{kind}").json()["items"] == []
    # The same model from bob's key: the shared model, and now bob sees it too.
    again = upload(bob)
    assert again.status_code == 202 and again.json()["circuit_id"] == accepted["circuit_id"]
    assert bob.get(f"/v1/circuits/{accepted['circuit_id']}").status_code == 200


def test_unknown_ids_are_404_naming_the_id(alice: TestClient) -> None:
    for path in ("/v1/models/nope", "/v1/circuits/nope", "/v1/proofs/nope", "/v1/jobs/nope"):
        response = alice.get(path)
        assert response.status_code == 404, path
        error = response.json()["error"]
        assert error["code"] == "not_found" and "nope" in error["message"]
    assert alice.get("/v1/training/runs/nope").status_code == 404
    assert alice.post("/v1/training/runs/nope/ledger").status_code == 404
    assert alice.post("/v1/proofs/nope/submissions").status_code == 404
