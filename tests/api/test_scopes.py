"""Scoped keys: a key reaches the routes of its scope (request, prove or admin) and is
refused 403 elsewhere, naming the scope needed and its own; admin keys administer keys."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from prover.config import Settings
from prover.errors import InvalidInputError
from prover.service.db import MIGRATIONS, engine_for, migrate, session_scope
from prover.service.keys import authenticate, create_key

Upload = Callable[..., httpx.Response]  # the ``upload`` fixture
Keyed = Callable[[str], TestClient]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(client: TestClient, app: FastAPI, api_settings: Settings) -> Iterator[Keyed]:
    """``keyed(scope)``: a client presenting a new key of that scope (named after it)."""
    made: list[TestClient] = []

    def make(scope: str) -> TestClient:
        key = create_key(api_settings.sqlalchemy_url(), scope, scope)["key"]
        made.append(TestClient(app, headers=bearer(key)))
        return made[-1]

    yield make
    for each in made:
        each.close()


def assert_forbidden(response: httpx.Response, needed: str, scope: str) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert (error["code"], error["required_scope"], error["key_scope"]) == (
        "forbidden",
        needed,
        scope,
    )
    assert f"scope '{needed}'" in error["message"] and f"has scope '{scope}'" in error["message"]


def test_a_prove_key_reaches_none_of_the_requesters_routes(keyed: Keyed, upload: Upload) -> None:
    prover = keyed("prove")
    assert_forbidden(upload(prover), "request", "prove")
    assert_forbidden(prover.get("/v1/proofs"), "request", "prove")
    assert_forbidden(prover.get("/v1/jobs/0"), "request", "prove")
    assert_forbidden(prover.get("/v1/keys"), "admin", "prove")
    assert "'request' or 'admin'" in upload(prover).json()["error"]["message"]


def test_a_request_key_does_not_administer_keys(keyed: Keyed) -> None:
    requester = keyed("request")
    assert requester.get("/v1/models").status_code == 200
    assert_forbidden(requester.post("/v1/keys", json={"scope": "admin"}), "admin", "request")
    assert_forbidden(requester.get("/v1/keys"), "admin", "request")
    assert_forbidden(requester.delete(f"/v1/keys/{'0' * 32}"), "admin", "request")


def test_an_admin_key_creates_lists_and_revokes_keys(
    keyed: Keyed, client: TestClient, upload: Upload
) -> None:
    admin = keyed("admin")
    made = admin.post("/v1/keys", json={"name": "pool-1", "scope": "prove"})
    assert made.status_code == 201, made.text
    new = made.json()
    assert new["key"].startswith("pk_") and (new["name"], new["scope"]) == ("pool-1", "prove")
    prover = bearer(new["key"])
    assert client.get("/v1/keys/me", headers=prover).json()["scope"] == "prove"
    listed = admin.get("/v1/keys").json()["items"]
    assert [(k["name"], k["scope"], k["revoked"]) for k in listed] == [
        ("admin", "admin", False),
        ("pool-1", "prove", False),
    ]
    assert all("key" not in k for k in listed), "secrets are never listed"
    revoked = admin.delete(f"/v1/keys/{new['key_id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    refused = client.get("/v1/keys/me", headers=prover)
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
    assert admin.delete(f"/v1/keys/{new['key_id']}").status_code == 200  # again: no change
    assert admin.delete(f"/v1/keys/{'0' * 32}").json()["error"]["code"] == "not_found"
    assert admin.delete("/v1/keys/me").status_code == 405, "me is no key id"
    assert upload(admin).status_code == 202, "an admin key does what a request key does"


@pytest.mark.parametrize("scope", ["request", "prove", "admin"])
def test_any_key_reads_its_own_identity(keyed: Keyed, scope: str) -> None:
    me = keyed(scope).get("/v1/keys/me")
    assert me.status_code == 200, me.text
    assert set(me.json()) == {"key_id", "name", "scope"}
    assert (me.json()["name"], me.json()["scope"]) == (scope, scope)


def test_a_new_key_is_a_request_key_unless_asked(keyed: Keyed) -> None:
    made = keyed("admin").post("/v1/keys")
    assert made.status_code == 201, made.text
    assert (made.json()["name"], made.json()["scope"]) == ("default", "request")


@pytest.mark.parametrize(
    "body",
    [{"scope": "root"}, {"scope": "Prove"}, {"name": ""}, {"name": "a\nb"}, {"name": 7}],
)
def test_an_unknown_scope_or_a_bad_name_is_422(keyed: Keyed, body: dict[str, object]) -> None:
    refused = keyed("admin").post("/v1/keys", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "invalid_request"


def test_create_key_refuses_an_unknown_scope(api_settings: Settings, client: TestClient) -> None:
    with pytest.raises(InvalidInputError, match="unknown scope 'root': one of request, prove"):
        create_key(api_settings.sqlalchemy_url(), "x", "root")


def test_a_key_made_before_scopes_is_a_request_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine_for(url).begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0008")
        conn.execute(
            text(
                "INSERT INTO api_keys (id, name, key_hash, created_at) "
                "VALUES ('k1', 'old', :hash, CURRENT_TIMESTAMP)"
            ),
            {"hash": hashlib.sha256(b"pk_old").hexdigest()},
        )
    migrate(url)
    with session_scope(url) as session:
        assert authenticate(session, "pk_old").scope == "request"
