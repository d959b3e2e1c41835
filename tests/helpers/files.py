"""Paths and files: the repository root, the shipped example models, JSON files."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _segmented(model: Path) -> bool:
    """An example proven in segments (its metrics say so): too large to compile whole."""
    metrics = model.parent / "metrics.json"
    return metrics.is_file() and "segmented" in json.loads(metrics.read_text())


# The examples that compile as one circuit (digits_lenet and digits_resnet are proven in
# segments by their own scripts; test_example_lenet.py checks the first).
EXAMPLES = sorted(
    p.parent.name for p in (REPO / "models").glob("*/model.onnx") if not _segmented(p)
)


def write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path
