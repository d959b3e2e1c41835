"""Digits CNN: conv 3x3 (4 channels) → ReLU → 2x2 average pool → linear, on 1x8x8 images."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from digits import write_example


def make_model() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, kernel_size=3),
        torch.nn.ReLU(),
        torch.nn.AvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 3 * 3, 10),
    )


if __name__ == "__main__":
    print(write_example(Path(__file__).parent, make_model(), (1, 8, 8)))
