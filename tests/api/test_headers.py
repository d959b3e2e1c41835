"""Oversized request headers, sent to ``prover serve`` (uvicorn) as a client would: the
app answers 431 in its error shape. Without the server's own buffer raised past the
app's limit, uvicorn answered a plain-text 400 before the app saw the request."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from helpers.stack import Service

LIMIT = 64 * 1024  # PROVER_MAX_HEADER_BYTES's default
NO_REDIS = "redis://127.0.0.1:1/0"  # nothing listens: the app limits rates per process


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``prover serve`` on a free port, its own SQLite database, no Redis."""
    tmp_path = tmp_path_factory.mktemp("serve")
    service = Service(tmp_path / "data", f"sqlite:///{tmp_path / 'prover.db'}", NO_REDIS)
    try:
        yield service.start_api().url
    finally:
        service.stop()


@pytest.mark.parametrize("size", [LIMIT + 1, 200_000, 15 * LIMIT])
def test_oversized_headers_are_431_in_the_apis_error_shape(api_url: str, size: int) -> None:
    answer = httpx.get(f"{api_url}/v1/jobs", headers={"X-Big": "a" * size}, timeout=30)
    assert answer.status_code == 431, answer.text
    error = answer.json()["error"]
    assert error["code"] == "headers_too_large" and error["limit"] == LIMIT
    assert "PROVER_MAX_HEADER_BYTES" in error["message"]


def test_headers_within_the_limit_reach_the_routes(api_url: str) -> None:
    answer = httpx.get(f"{api_url}/v1/jobs", headers={"X-Big": "a" * (LIMIT - 1000)})
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized"
