"""Digits LeNet: a deeper CNN on 1x8x8 images, sized so its unsplit circuit needs over 2^19
rows (each 13->13 3x3 convolution on 8x8 is ~97k multiply-adds, about as many rows), while
every layer fits a 2^17-row segment: the example for segmented proving (prove_segments.py).

conv 3x3 (1->13) -> ReLU -> 6 x [conv 3x3 (13->13) -> ReLU] -> 2x2 average pool -> linear.
A Sequential export leaves one tensor between layers: each is a cut point.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from digits import write_example

CHANNELS = 14
HIDDEN_CONVS = 6
EPOCHS = 40
WEIGHT_DECAY = 0.01


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = [torch.nn.Conv2d(1, CHANNELS, 3, padding=1), torch.nn.ReLU()]
    for _ in range(HIDDEN_CONVS):
        layers += [torch.nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1), torch.nn.ReLU()]
    layers += [
        torch.nn.AvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(CHANNELS * 4 * 4, 10),
    ]
    return torch.nn.Sequential(*layers)


if __name__ == "__main__":
    metrics = write_example(
        Path(__file__).parent, make_model(), (1, 8, 8), epochs=EPOCHS, weight_decay=WEIGHT_DECAY
    )
    print(metrics)
