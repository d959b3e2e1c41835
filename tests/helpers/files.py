"""Paths and files: the repository root, the shipped example models, JSON files."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

EXAMPLES = sorted(p.parent.name for p in (REPO / "models").glob("*/model.onnx"))


def write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path
