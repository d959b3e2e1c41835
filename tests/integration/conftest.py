"""Fixtures of the slow tier: the tiny MLP compiled with the full settings search (one per
session, shared by the proof tests), an anvil node per module.

Every test under ``tests/integration`` is slow: each module says so with
``pytestmark = pytest.mark.slow``, and the hook below marks any test that a new module
forgot to, so that ``-m "not slow"`` never picks one up.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.models import calibration_data
from prover.chain.client import Chain, connect
from prover.chain.node import ANVIL_DEV_KEY, LocalChain
from prover.circuits.compiler import CompileOptions, compile_model
from prover.config import Settings
from prover.store import ArtifactStore

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def session_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def compiled(mlp_path: Path, session_settings: Settings) -> dict:
    """The tiny MLP compiled with the full settings search (shared by proof tests)."""
    store = ArtifactStore(session_settings.data_dir)
    return compile_model(mlp_path, calibration_data(), CompileOptions(), store, session_settings)


@pytest.fixture
def session_store(session_settings: Settings) -> ArtifactStore:
    return ArtifactStore(session_settings.data_dir)


@pytest.fixture
def sample_input() -> dict:
    return {"input_data": [[0.5, -1.25, 0.75, 2.0]]}


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    """A fresh anvil node for each module that asks for one."""
    with LocalChain() as node:
        yield connect(node.rpc_url, ANVIL_DEV_KEY)
