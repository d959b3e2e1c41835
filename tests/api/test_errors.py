"""Every error the product raises has a code and an HTTP status, and the API answers it."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import prover
from prover.api.app import create_app
from prover.config import Settings
from prover.errors import ProverError

Upload = Callable[..., httpx.Response]  # the ``upload`` fixture


def all_prover_errors() -> list[type[ProverError]]:
    """Every ``ProverError`` subclass the package defines (all its modules imported)."""
    for module in pkgutil.walk_packages(prover.__path__, "prover."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found: list[type[ProverError]] = []
    todo = [ProverError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return sorted(set(found), key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


ERRORS = all_prover_errors()


def test_the_walk_finds_the_errors() -> None:
    names = {cls.__name__ for cls in ERRORS}
    assert {"ProverError", "NotFoundError", "ChainUnavailableError", "ServiceError"} <= names


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_every_error_has_a_code_and_an_http_status(cls: type[ProverError]) -> None:
    assert isinstance(cls.code, str) and cls.code, cls
    assert isinstance(cls.status, int) and 400 <= cls.status <= 599, cls
    assert isinstance(cls.transient, bool)


@pytest.fixture
def raising_app(api_settings: Settings) -> FastAPI:
    """The app with one more route, raising the error class it is named after."""
    app = create_app(api_settings)
    by_name = {f"{cls.__module__}.{cls.__qualname__}": cls for cls in ERRORS}

    @app.get("/raise/{name}")
    def raise_error(name: str) -> None:
        cls = by_name[name]
        error = cls.__new__(cls)  # whatever its own constructor takes
        ProverError.__init__(error, f"raised {cls.__name__}", extra="detail")
        raise error

    return app


def test_the_api_answers_each_errors_status(raising_app: FastAPI) -> None:
    client = TestClient(raising_app)
    for cls in ERRORS:
        response = client.get(f"/raise/{cls.__module__}.{cls.__qualname__}")
        assert response.status_code == cls.status, cls
        assert response.json() == {
            "error": {"code": cls.code, "message": f"raised {cls.__name__}", "extra": "detail"}
        }


def test_unknown_paths_and_methods_keep_the_error_shape(client: TestClient) -> None:
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "http_error"
    wrong = client.delete("/v1/models")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "http_error"


def test_a_bad_json_body_is_invalid_request_naming_the_field(alice: TestClient) -> None:
    response = alice.post("/v1/circuits/c/proofs", json={"inputs": []})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and "input" in error["message"]
    assert "items" in error["message"]  # a batch circuit's inputs are the alternative
    assert error["errors"][0]["loc"] == ["body"]


def test_bodies_over_the_limit_are_413(tmp_path: Path, upload: Upload) -> None:
    small = Settings(
        data_dir=tmp_path / "d",
        max_request_bytes=1000,
        max_model_bytes=1000,
        redis_url="redis://127.0.0.1:1/0",
    )
    client = TestClient(create_app(small))
    response = client.post("/v1/circuits/c/proofs", json={"input": [[0.0] * 1000]})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert upload(client, b"\0" * 1500).status_code == 401, "uploads get more room"
    assert upload(client, b"\0" * 2500).status_code == 413
