"""Digits MLP (64-32-10): train on scikit-learn's digits and export the example artifacts."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from digits import write_example


def make_model() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
    )


if __name__ == "__main__":
    print(write_example(Path(__file__).parent, make_model(), (64,)))
