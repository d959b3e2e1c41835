"""The console's files as the API serves them (in process, no browser): the redirect, the
security headers, the media types, nothing fetched from another origin, and nothing added to
the OpenAPI document; and its script's modules pass eslint and TypeScript's check of their
JSDoc types (`npm run lint:ui`), where node_modules has them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from prover.api.app import create_app
from prover.config import Settings

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "prover" / "api" / "ui"
MODULES = sorted(path.name for path in (UI / "js").glob("*.js"))
FILES = {
    "": "text/html",
    "console.css": "text/css",
    **{f"js/{name}": "text/javascript" for name in MODULES},
}
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # an XML name in the script, never fetched
IMPORT = re.compile(r'^import .* from "(\./[\w-]+\.js)";$', re.MULTILINE)


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


def test_the_page_loads_the_modules_that_import_each_other(client: TestClient) -> None:
    """index.html loads js/main.js as a module; every module is reached from it by relative
    imports, and every import names a module that is served."""
    page = client.get("/ui/").text
    assert '<script type="module" src="js/main.js"></script>' in page
    seen, todo = set(), ["main.js"]
    while todo:
        name = todo.pop()
        seen.add(name)
        answer = client.get(f"/ui/js/{name}")
        assert answer.status_code == 200, name
        assert answer.text.startswith("// @ts-check\n"), name
        todo += [found[2:] for found in IMPORT.findall(answer.text) if found[2:] not in seen]
    assert seen == set(MODULES)


def test_other_names_are_not_found_in_the_apis_error_shape(client: TestClient) -> None:
    answer = client.get("/ui/secrets.txt")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
    assert client.get("/ui/..%2Fapp.py").status_code == 404
    for name in ("console.js", "js/eslint.config.mjs", "tsconfig.json", "js/..%2Fconsole.css"):
        assert client.get(f"/ui/{name}").status_code == 404, name


def test_the_console_is_not_part_of_the_api_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/ui")]


def test_the_script_passes_eslint_and_the_type_check() -> None:
    """`npm run lint:ui`: eslint (prover/api/ui/eslint.config.mjs) and `tsc --noEmit
    --allowJs --checkJs` (prover/api/ui/tsconfig.json) over the modules."""
    tools = [ROOT / "node_modules" / ".bin" / name for name in ("eslint", "tsc")]
    missing = [tool.name for tool in tools if not tool.exists()]
    npm = shutil.which("npm")
    if missing or npm is None:
        pytest.skip(
            f"no {', '.join(missing or ['npm'])}: the npm devDependencies are not installed "
            "(run `npm install`, or `bash scripts/setup.sh`)"
        )
    result = subprocess.run(
        [npm, "run", "--silent", "lint:ui"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
