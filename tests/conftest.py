"""Shared fixtures: a tiny real MLP, a data dir per test, one compiled circuit per session."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from prover.circuits.compiler import CompileOptions, compile_model
from prover.circuits.export import export_onnx
from prover.config import Settings
from prover.store import ArtifactStore

REPO = Path(__file__).resolve().parents[1]


def make_mlp(path: Path, seed: int = 0) -> Path:
    """A 4-8-2 ReLU MLP exported to ONNX."""
    torch.manual_seed(seed)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    return export_onnx(module, torch.zeros(1, 4), path)


def step_model() -> torch.nn.Module:
    """The tiny 4-6-3 MLP whose SGD step the training tests prove."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))


def step_batch(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A batch of 4 for ``step_model``: inputs and one-hot targets."""
    from prover.training.graph import one_hot

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 4)).astype(np.float32)
    return x, one_hot(rng.integers(0, 3, 4), 3)


def calibration_data(n: int = 12, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    return {"input_data": [rng.standard_normal(4 * n).round(4).tolist()]}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", measure_top=1)


@pytest.fixture
def store(settings: Settings) -> ArtifactStore:
    return ArtifactStore(settings.data_dir)


@pytest.fixture(scope="session")
def mlp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mlp(tmp_path_factory.mktemp("models") / "mlp.onnx")


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


def write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path
