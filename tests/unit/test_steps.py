"""Step circuits refused before any proof (integration/test_training.py proves steps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.models import step_batch, step_model
from prover.config import Settings
from prover.errors import CircuitError
from prover.store import ArtifactStore
from prover.training.steps import compile_step


def test_an_update_drowned_by_quantization_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, measure_top=1)
    with pytest.raises(CircuitError, match="drown"):
        compile_step(step_model(), "mse", 1e-7, *step_batch(0), ArtifactStore(tmp_path), settings)
