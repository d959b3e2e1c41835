"""Digits ResNet: a residual CNN with x * sigmoid(x) activations, exported the way users
export (``torch.onnx.export`` with a dynamic batch axis named "N", ``x.view(x.size(0), -1)``
before the head): the example of a model too big for this machine, proven in segments.

conv 3x3 (1->8) -> SiLU -> 8 x residual block [conv 3x3 (8->8) -> SiLU -> conv 3x3 (8->8),
+ skip, SiLU] -> 2x2 average pool -> linear. Its unsplit circuit needs 2^20 rows with a
Sigmoid lookup table: a proving key of several GB and a predicted proof peak over the
machine's 24 GiB (``prover compile --estimate``). A cut is possible only between blocks (a
residual block keeps its input live), and each block fits a 2^17-row segment.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from digits import write_example

CHANNELS = 8
BLOCKS = 8
EPOCHS = 15
SHAPE = (1, 8, 8)


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = torch.nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1)
        self.second = torch.nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first(x)
        h = self.second(h * torch.sigmoid(h)) + x
        return h * torch.sigmoid(h)


class ResNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(1, CHANNELS, 3, padding=1)
        self.blocks = torch.nn.Sequential(*(Block() for _ in range(BLOCKS)))
        self.pool = torch.nn.AvgPool2d(2)
        self.head = torch.nn.Linear(CHANNELS * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        h = self.pool(self.blocks(h * torch.sigmoid(h)))
        return self.head(h.view(h.size(0), -1))


if __name__ == "__main__":
    torch.manual_seed(0)
    print(
        write_example(
            Path(__file__).parent,
            ResNet(),
            SHAPE,
            epochs=EPOCHS,
            weight_decay=0.01,
            dynamic_batch="N",
        )
    )
