"""Fixtures of the browser tests: a real service (private Redis, SQLite, one worker, the API
over HTTP) and Debian's headless Chromium driven by Playwright.

Playwright's own browser download is not used: the tests launch the system's `chromium`
(`scripts/setup.sh` installs it with apt-get when missing). Every page's screenshot goes to
``$PROVER_BROWSER_ARTIFACTS`` (default ``test-artifacts/browser/`` in the repository).

Every test here that drives the browser or the service is marked slow by the hook below;
the console's files served in process (``test_ui_files.py``) stay in the fast tier.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.stack import Service, running_service

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container: Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--no-first-run",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        uses = set(getattr(item, "fixturenames", ()))
        if HERE in item.path.parents and uses & {"browser", "service"}:
            item.add_marker(pytest.mark.slow)


def chromium_path() -> str:
    """The system's Chromium; the tests skip, saying how to install it, when it is missing."""
    path = os.environ.get("PROVER_CHROMIUM") or shutil.which("chromium")
    if path is None:
        pytest.skip(
            "no `chromium` on PATH: run `bash scripts/setup.sh` as root (it installs Debian's "
            "chromium with apt-get) or set PROVER_CHROMIUM to a Chromium binary"
        )
    return path


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (kept after the run, for people and CI to look at)."""
    path = Path(os.environ.get("PROVER_BROWSER_ARTIFACTS", ROOT / "test-artifacts" / "browser"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The service the console talks to: one worker (compile, prove and chain queues), on a
    local anvil chain of its own."""
    with running_service(tmp_path_factory.mktemp("console-service"), 1, chain=True) as svc:
        yield svc
