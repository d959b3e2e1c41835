"""Tiny transformer block on digits: each image row is a token (8 tokens x 8 pixels).

Embedding + position, pre-norm single-head self-attention with softmax, a ReLU MLP, both
residual, mean-pooled into a linear classifier.
"""

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from digits import write_example

TOKENS, PIXELS, WIDTH = 8, 8, 8


class TinyTransformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(PIXELS, WIDTH)
        self.position = nn.Parameter(torch.zeros(1, TOKENS, WIDTH))
        self.norm1 = nn.LayerNorm(WIDTH)
        self.qkv = nn.Linear(WIDTH, 3 * WIDTH)
        self.proj = nn.Linear(WIDTH, WIDTH)
        self.norm2 = nn.LayerNorm(WIDTH)
        self.mlp = nn.Sequential(
            nn.Linear(WIDTH, 2 * WIDTH), nn.ReLU(), nn.Linear(2 * WIDTH, WIDTH)
        )
        self.head = nn.Linear(WIDTH, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + self.position
        q, k, v = self.qkv(self.norm1(h)).chunk(3, dim=-1)
        attention = torch.softmax(q @ k.transpose(-2, -1) / WIDTH**0.5, dim=-1)
        h = h + self.proj(attention @ v)
        h = h + self.mlp(self.norm2(h))
        return self.head(h.mean(dim=1))


if __name__ == "__main__":
    print(write_example(Path(__file__).parent, TinyTransformer(), (TOKENS, PIXELS), epochs=150))
