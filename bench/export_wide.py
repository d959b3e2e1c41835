"""Export a model the way users export one, for the benchmarks that take model dirs: a
256-input MLP with a residual block, by ``torch.onnx.export`` with ``dynamic_axes`` and a
batch dim named ``N?batch`` (a name raw ezkl cannot read). Its input is public, so a proof
has 260 instances (256 in, 4 out): the market's gas at many instances.

    .venv/bin/python bench/export_wide.py /tmp/wide
    .venv/bin/python bench/bench_market.py --models digits_mlp /tmp/wide
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


class Wide(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = (
            torch.nn.Linear(256, 16),
            torch.nn.Linear(16, 16),
            torch.nn.Linear(16, 4),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))
        return self.c(h + torch.relu(self.b(h)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the model dir to write")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = Wide().eval()
    sample = torch.rand(1, 256)
    torch.onnx.export(
        model,
        (sample,),
        str(out / "model.onnx"),
        input_names=["pixels"],
        output_names=["logits"],
        dynamic_axes={"pixels": {0: "N?batch"}, "logits": {0: "N?batch"}},
        dynamo=False,
    )
    calibration = rng.random((8, 256)).round(3).reshape(1, -1).tolist()
    (out / "calibration.json").write_text(json.dumps({"input_data": calibration}))
    values = sample.numpy().round(3).reshape(1, -1).tolist()
    (out / "input.json").write_text(json.dumps({"input_data": values}))


if __name__ == "__main__":
    main()
