"""Shared by the benchmark scripts: the example models, what a report says (tables, JSON,
the environment) and the least squares both cost fits solve."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import platform
import statistics
import sys
from collections.abc import Iterable, Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
TEST_MODELS = MODELS_DIR.parent / "tests" / "helpers" / "models.py"
RESULTS = Path(__file__).resolve().parent / "results"


def model_dirs(names: Sequence[str] | None) -> list[Path]:
    """Model directories to measure: all with a model.onnx, or the named ones."""
    if names:
        dirs = [MODELS_DIR / n for n in names]
        missing = [str(d) for d in dirs if not (d / "model.onnx").is_file()]
        if missing:
            raise SystemExit(f"no model.onnx in: {', '.join(missing)}")
        return dirs
    return sorted(d for d in MODELS_DIR.iterdir() if (d / "model.onnx").is_file())


def load_file(name: str, path: Path) -> ModuleType:
    """Import a file as a module under its own name, without sys.path changes: models/ and
    the tests' helpers are not packages a benchmark can import."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # a dataclass looks its module up while it is defined
    spec.loader.exec_module(module)
    return module


def quiet_ezkl() -> None:
    """Silence ezkl's and tract's warnings (its calibration reports), so progress shows."""
    for noisy in ("ezkl", "tract_onnx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


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


GOAL_SPEEDUP = 5.0  # the search must prove this much faster than ezkl's defaults


def summary_table(summary: dict[str, Any], markdown: bool) -> str:
    """Speedup and accuracy verdict per model (n/a where a compile or proof failed)."""
    headers = ["model", "default prove s", "search prove s", "speedup", "accuracy ok", ">= 5x"]
    cells = []
    for m in summary["models"]:
        if m["speedup"] is None:
            cells.append([m["model"], "-", "-", "n/a", "n/a", "n/a"])
            continue
        cells.append(
            [
                m["model"],
                f"{m['default_prove_s']:.2f}",
                f"{m['search_prove_s']:.2f}",
                f"{m['speedup']:.2f}x",
                "yes" if m["accuracy_ok"] else "no",
                "yes" if m["speedup"] >= GOAL_SPEEDUP else "no",
            ]
        )
    return format_table(headers, cells, markdown)


def chosen_rows(record: dict[str, Any]) -> int | None:
    """ezkl's row count of the circuit the search chose, as its trial recorded it."""
    chosen = record["search"]["chosen"]
    trials = record["search"]["trials"]
    return next((t.get("num_rows") for t in trials if t["name"] == chosen), None)


def measurements(
    record: dict[str, Any], compiled: dict[str, Any], proofs: list[dict], verifies: list[dict]
) -> dict[str, Any]:
    """What every benchmark row reports of a compiled circuit and its timed proofs."""
    return {
        "num_rows": chosen_rows(record),
        "setup_s": record["timings"]["setup_s"],
        "compile_peak_mb": compiled["peak_mb"],
        "compile_timings": record["timings"],
        "prove_s": statistics.median(p["prove_s"] for p in proofs),
        "prove_runs_s": [p["prove_s"] for p in proofs],
        "witness_s": statistics.median(p["witness_s"] for p in proofs),
        "verify_s": statistics.median(v["verify_s"] for v in verifies),
        "verify_runs_s": [v["verify_s"] for v in verifies],
        "peak_mb": max(p["peak_mb"] for p in proofs),
        "prove_runs_peak_mb": [p["peak_mb"] for p in proofs],
        "prove_base_mb": min(p["base_mb"] for p in proofs),
        "prove_loadavg_1m": [p["loadavg_1m"] for p in proofs],
        "proof_bytes": proofs[-1]["proof_bytes"],
        "pk_bytes": record["pk_bytes"],
        "vk_bytes": record["vk_bytes"],
    }


def strategy_pairs(
    rows: Sequence[dict[str, Any]],
) -> Iterator[tuple[str, dict[str, Any], dict[str, Any], str | None]]:
    """(model, ezkl-default row, search row, failure or None) for each model measured both
    ways; the failure names the strategies that could not be measured."""
    by_model: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_model.setdefault(row["model"], {})[row["strategy"]] = row
    for name, pair in by_model.items():
        default, found = pair.get("ezkl-default"), pair.get("search")
        if default is None or found is None:
            continue
        failed = [f"{r['strategy']} {r['error']}" for r in (default, found) if r["error"]]
        yield name, default, found, "; ".join(failed) or None


def environment(load_start: tuple[float, float, float]) -> dict[str, Any]:
    """What a benchmark's numbers depend on: versions, CPUs, load before and after."""
    return {
        "ezkl": version("ezkl"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
    }


def write_json(path: Path, data: Any) -> None:
    """Write a report as indented JSON, whole or not at all: a run that rewrites it as it
    goes may be stopped at any moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(partial, path)


def fit_nonnegative(a: Any, y: Sequence[float]) -> list[float]:
    """Non-negative weights w minimising the squared relative error of ``a @ w`` against
    ``y`` (a measured quantity spans orders of magnitude; every circuit counts alike),
    each to 6 significant digits."""
    import numpy as np
    from scipy.optimize import nnls

    weighted = np.asarray(a, dtype=float) / np.asarray(y, dtype=float)[:, None]
    scale = weighted.max(axis=0)
    scale[scale == 0] = 1.0
    solution, _ = nnls(weighted / scale, np.ones(len(y)))
    return [float(f"{c:.6g}") for c in solution / scale]


def stated_error(errors: Iterable[float]) -> float:
    """The largest relative error, rounded up to 0.1%: what a fitted model states as its
    error."""
    worst = max(abs(e) for e in errors)
    return float(f"{(int(worst * 1000) + 1) / 1000:.3f}")
