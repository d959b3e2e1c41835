"""The console's files as the API serves them (in process, no browser): the redirect, the
security headers, the media types, nothing fetched from another origin, and nothing added to
the OpenAPI document."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from prover.api.app import create_app
from prover.config import Settings

FILES = {"": "text/html", "console.js": "text/javascript", "console.css": "text/css"}
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # an XML name in the script, never fetched


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    """The app without its start-up (no database or Redis needed for static files)."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'prover.db'}",
        redis_url="redis://127.0.0.1:1/0",
    )
    return TestClient(create_app(settings))


def test_ui_redirects_to_the_page(client: TestClient) -> None:
    answer = client.get("/ui", follow_redirects=False)
    assert answer.status_code == 307 and answer.headers["location"] == "/ui/"


@pytest.mark.parametrize("name", list(FILES))
def test_each_file_is_served_with_a_strict_policy(client: TestClient, name: str) -> None:
    answer = client.get(f"/ui/{name}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(FILES[name])
    policy = dict(
        part.strip().split(" ", 1) for part in answer.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'" and policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert answer.headers["x-content-type-options"] == "nosniff"
    # Offline: every URL the files name is relative (no CDN, no font or script elsewhere).
    text = answer.text.replace(SVG_NAMESPACE, "")
    urls = re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"')]*", text)
    assert urls == [], urls


def test_other_names_are_not_found_in_the_apis_error_shape(client: TestClient) -> None:
    answer = client.get("/ui/secrets.txt")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
    assert client.get("/ui/..%2Fapp.py").status_code == 404


def test_the_console_is_not_part_of_the_api_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/ui")]
