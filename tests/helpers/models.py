"""Tiny models and data: a real MLP exported to ONNX, the training tests' step model.

torch is imported only by the functions that need it, so that importing this module
(and the root conftest) stays cheap for tests that never build a torch model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def make_mlp(path: Path, seed: int = 0) -> Path:
    """A 4-8-2 ReLU MLP exported to ONNX."""
    import torch

    from prover.circuits.export import export_onnx

    torch.manual_seed(seed)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    return export_onnx(module, torch.zeros(1, 4), path)


def step_model() -> torch.nn.Module:
    """The tiny 4-6-3 MLP whose SGD step the training tests prove."""
    import torch

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
