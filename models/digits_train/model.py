"""A tiny digits classifier for proven training: 4x4 pooled pixels → 8 → 10 classes.

``make_model`` is what ``prover train compile models/digits_train/model.py:make_model``
loads; ``batches`` cuts scikit-learn's bundled digits (no download) into fixed batches.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from digits import digits_split

BATCH = 8
CLASSES = 10


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 10))


def pooled(x: np.ndarray) -> np.ndarray:
    """8x8 images → 4x4 by 2x2 averaging, flattened to 16 features in [0, 1]."""
    return x.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16).astype(np.float32)


def batches(count: int, size: int = BATCH) -> list[dict[str, list]]:
    """``count`` training batches ``{"x": [[16 floats] x size], "y": [labels]}``."""
    x_train, _, y_train, _ = digits_split()
    x = pooled(x_train)
    return [
        {
            "x": x[i * size : (i + 1) * size].tolist(),
            "y": y_train[i * size : (i + 1) * size].tolist(),
        }
        for i in range(count)
    ]


def evaluation_set() -> tuple[np.ndarray, np.ndarray]:
    """The test split, pooled: to show the proven weights learning."""
    _, x_test, _, y_test = digits_split()
    return pooled(x_test), y_test
