"""Fixtures shared by every tier: settings and a store per test, the tiny MLP per session.

Helpers (plain functions) live in the ``helpers`` package; the fixtures only the
integration tests use (the session's compiled circuit, anvil) are in
``integration/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.register_assert_rewrite("helpers")

from helpers.models import make_mlp  # noqa: E402
from prover.config import Settings  # noqa: E402
from prover.store import ArtifactStore  # noqa: E402


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", measure_top=1)


@pytest.fixture
def store(settings: Settings) -> ArtifactStore:
    return ArtifactStore(settings.data_dir)


@pytest.fixture(scope="session")
def mlp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mlp(tmp_path_factory.mktemp("models") / "mlp.onnx")
