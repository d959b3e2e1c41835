"""Shared by the benchmark scripts: the example models and table output."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


def model_dirs(names: Sequence[str] | None) -> list[Path]:
    """Model directories to measure: all with a model.onnx, or the named ones."""
    if names:
        dirs = [MODELS_DIR / n for n in names]
        missing = [str(d) for d in dirs if not (d / "model.onnx").is_file()]
        if missing:
            raise SystemExit(f"no model.onnx in: {', '.join(missing)}")
        return dirs
    return sorted(d for d in MODELS_DIR.iterdir() if (d / "model.onnx").is_file())


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    """Aligned plain-text columns, or a markdown table."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    right = [any(r[i][:1].isdigit() for r in rows) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        ]
        return f"| {' | '.join(parts)} |" if markdown else "  ".join(parts).rstrip()

    if markdown:
        dashes = [
            "-" * (w + 1) + ":" if r else "-" * (w + 2) for w, r in zip(widths, right, strict=True)
        ]
        rule = "|" + "|".join(dashes) + "|"
    else:
        rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])
