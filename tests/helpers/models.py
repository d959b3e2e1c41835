"""Tiny models and data: a real MLP exported to ONNX, the training tests' step model.

torch is imported only by the functions that need it, so that importing this module
(and the root conftest) stays cheap for tests that never build a torch model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx
    import torch


def make_mlp(path: Path, seed: int = 0) -> Path:
    """A 4-8-2 ReLU MLP exported to ONNX."""
    import torch

    from prover.circuits.export import export_onnx

    torch.manual_seed(seed)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    return export_onnx(module, torch.zeros(1, 4), path)


def make_dynamic_cnn(path: Path, dim: str = "N", fold: bool = True) -> Path:
    """A small CNN exported the way users export: a dynamic batch axis named ``dim``,
    x * sigmoid(x), a residual block, a flatten by ``x.view(x.size(0), -1)`` (shape
    arithmetic: Shape -> Gather -> Concat), and, without ``fold``, its constants as
    Constant nodes instead of initializers. Input 1x1x4x4, 3 outputs."""
    import warnings

    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)
            self.inner = torch.nn.Conv2d(2, 2, 3, padding=1)
            self.head = torch.nn.Linear(32, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.conv(x)
            h = h * torch.sigmoid(h)
            h = h + torch.relu(self.inner(h))
            return self.head(h.view(h.size(0), -1))

    torch.manual_seed(0)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Net().eval(),
            (torch.zeros(1, 1, 4, 4),),
            str(path),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: dim}, "logits": {0: dim}},
            opset_version=17,
            do_constant_folding=fold,
            dynamo=False,
        )
    return path


def fixed_graph(path: Path) -> onnx.ModelProto:
    """The graph cut finding sees: the model through intake, its symbolic dims fixed."""
    from prover.circuits.intake import load_model
    from prover.config import Settings

    return load_model(path, Settings()).fixed_graph()


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
