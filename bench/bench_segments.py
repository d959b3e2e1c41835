"""Benchmark segmented proving: one model unsplit against K segments, on K workers.

An MLP is built here (``--inputs``, ``--width``, ``--depth``: big enough that proving
matters, about 2^14-2^16 rows unsplit) and compiled with one pinned search space
(``--scale``, 3 legs, 2 inner columns, one finalist) as one circuit, and as segmented
circuits for each ``--segments`` K and ``--links`` link. For each it reports:

* per-circuit logrows and rows (ezkl's ``num_rows``), and the compile wall time;
* one worker: every circuit proved one after another in one spawned child (the unsplit
  circuit through ``prove_input``; segments through ``prove_segment``): wall time,
  each proof's ``prove_s``, and memory as below;
* K workers: the witnesses staged once (``prepare_segments``, timed), then each segment
  proved in its own spawned child at the same time, then ``compose`` checks every proof
  and link; per worker, the memory the prover adds (peak RSS sampled while proving minus
  the RSS before: ``prover MB``), and the peak RSS itself.

Times in the table are for workers already running (``warm_s``: process start and imports
left out; the JSON keeps the cold wall times too).

Every child runs with ``RAYON_NUM_THREADS=1`` (one core per worker), so K workers need K
free cores to finish in 1/K of the time. The goals: 2 workers finish a 2-segment proof in
at most 0.6x the time one worker takes for the unsplit circuit, and each worker's peak
prover memory is at most 0.6x the unsplit prover's. Timings are wall clock; the JSON records load
averages (other processes on the machine slow every number).

Run from the repository root::

    .venv/bin/python bench/bench_segments.py [--inputs 72 --width 72 --depth 4] [--segments 2 4] \
        [--links polycommit hashed] [--json out.json] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from children import RssSampler, in_child, in_children, peak_rss_mb
from common import RESULTS, environment, format_table, write_json
from workers import compile_worker

from prover.circuits.compiler import CompileOptions
from prover.circuits.links import LinkChoice
from prover.circuits.search import SearchSpace
from prover.circuits.segment_build import build_segmented
from prover.circuits.segments import plan_segmented
from prover.config import Settings
from prover.proving.composite import compose, prepare_segments, prove_segment
from prover.proving.proofs import plan_proof, prove_input
from prover.store import ArtifactStore

GOAL_TIME, GOAL_MEMORY = 0.6, 0.6


def build_model(path: Path, inputs: int, width: int, depth: int) -> Path:
    """An ``inputs``-width^depth-10 ReLU MLP, exported to ONNX."""
    import torch

    from prover.circuits.export import export_onnx

    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    size = inputs
    for _ in range(depth):
        layers += [torch.nn.Linear(size, width), torch.nn.ReLU()]
        size = width
    module = torch.nn.Sequential(*layers, torch.nn.Linear(size, 10))
    return export_onnx(module, torch.zeros(1, inputs), path)


def data(inputs: int, samples: int, seed: int) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    return {"input_data": [rng.standard_normal(inputs * samples).round(4).tolist()]}


# --- child-process workers (module level, so the spawn context can import them) ---------


def compile_segmented_worker(
    model: str,
    calibration: Any,
    options: CompileOptions,
    data_dir: str,
    segments: int,
    link: LinkChoice,
) -> dict[str, Any]:
    """Plan and build the model in ``segments`` segments; the record and wall time."""
    settings = Settings(data_dir=Path(data_dir))
    started = time.perf_counter()
    plan = plan_segmented(Path(model), calibration, options, settings, segments, link=link)
    record = build_segmented(plan, options, ArtifactStore(settings.data_dir), settings)
    return {"record": record, "wall_s": time.perf_counter() - started}


def prove_unsplit_worker(data_dir: str, circuit_id: str, input_obj: Any) -> dict[str, Any]:
    store = ArtifactStore(Path(data_dir))
    base_mb, started = peak_rss_mb(), time.perf_counter()
    with RssSampler() as rss:
        record = prove_input(store, circuit_id, input_obj, fresh=True)
    return {
        **rss.report(),
        "prove_s": [record["timings"]["prove_s"]],
        "witness_s": record["timings"]["witness_s"],
        "wall_in_child_s": time.perf_counter() - started,
        "base_mb": base_mb,
        "peak_mb": peak_rss_mb(),
        "loadavg_1m": os.getloadavg()[0],
    }


def prove_segments_worker(data_dir: str, proof_id: str, indices: list[int]) -> dict[str, Any]:
    store = ArtifactStore(Path(data_dir))
    base_mb, started = peak_rss_mb(), time.perf_counter()
    with RssSampler() as rss:
        results = [prove_segment(store, proof_id, i) for i in indices]
    return {
        **rss.report(),
        "prove_s": [r["timings"]["prove_s"] for r in results],
        "wall_in_child_s": time.perf_counter() - started,
        "base_mb": base_mb,
        "peak_mb": peak_rss_mb(),
        "loadavg_1m": os.getloadavg()[0],
    }


# --- measurement -------------------------------------------------------------------------


def _rows(store: ArtifactStore, circuit_ids: list[str]) -> list[int]:
    return [
        int(json.loads((store.path("circuits", c) / "settings.json").read_text())["num_rows"])
        for c in circuit_ids
    ]


def measure(
    name: str, config: dict, model: Path, data_dir: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Compile one configuration, then prove it with one worker and (segmented) K workers."""
    options = CompileOptions(
        space=SearchSpace(scales=(args.scale,), legs=(3,), inner_cols=(2,)), measure_top=1
    )
    store = ArtifactStore(Path(data_dir))
    input_obj = data(args.inputs, 1, 7)
    print(f"[bench] compiling {name}", flush=True)
    calibration = data(args.inputs, 8, 1)
    if config["segments"] is None:
        compiled = in_child(compile_worker, str(model), calibration, options, data_dir)
    else:
        segmented = (config["segments"], config["link"])
        compiled = in_child(
            compile_segmented_worker, str(model), calibration, options, data_dir, *segmented
        )
    record = compiled["record"]
    row: dict[str, Any] = {"config": name, **config, "compile_s": compiled["wall_s"]}
    if config["segments"] is None:
        ids = [record["id"]]
        print(f"[bench] proving {name} (one worker)", flush=True)
        (one,), wall = in_children(prove_unsplit_worker, [(data_dir, record["id"], input_obj)])
        row.update(one_worker=one, one_worker_wall_s=wall, accuracy=record["accuracy"])
    else:
        ids = [s["circuit_id"] for s in record["segments"]]
        row.update(prove_segmented(store, data_dir, record, input_obj, name))
        row["accuracy"] = record["accuracy"]
    row.update(circuit_ids=ids, logrows=[store.read_record("circuits", c)["logrows"] for c in ids])
    row["rows"] = _rows(store, ids)
    return row


def prove_segmented(
    store: ArtifactStore, data_dir: str, record: dict, input_obj: Any, name: str
) -> dict[str, Any]:
    count = len(record["segments"])
    out: dict[str, Any] = {}
    for mode in ("one", "parallel"):
        plan = plan_proof(store, record["id"], input_obj, fresh=True)
        started = time.perf_counter()
        prepare_segments(store, plan)
        witness_s = time.perf_counter() - started
        print(f"[bench] proving {name} ({mode} worker(s))", flush=True)
        if mode == "one":
            calls = [(data_dir, plan.proof_id, list(range(count)))]
        else:
            calls = [(data_dir, plan.proof_id, [i]) for i in range(count)]
        results, wall = in_children(prove_segments_worker, calls)
        started = time.perf_counter()
        composed = compose(store, plan)
        out[f"{mode}_worker" if mode == "one" else "k_workers"] = {
            "witness_s": witness_s,
            "wall_s": wall,
            "compose_s": time.perf_counter() - started,
            "workers": results,
            "outputs": composed["outputs"],
        }
    return out


# --- report ------------------------------------------------------------------------------


def warm_s(row: dict[str, Any], mode: str) -> float:
    """Seconds to one verified proof by workers already running (process start and imports
    left out): the unsplit ``prove_input``; or staging the witnesses, the slowest worker's
    proofs, and composing (which verifies every segment and link)."""
    if row["segments"] is None:
        return float(row["one_worker"]["wall_in_child_s"])
    run = row[mode]
    slowest = max(w["wall_in_child_s"] for w in run["workers"])
    return float(run["witness_s"] + slowest + run["compose_s"])


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    unsplit = next(r for r in rows if r["segments"] is None)
    base_wall = warm_s(unsplit, "one_worker")
    base_peak = unsplit["one_worker"]["prover_mb"]
    out = []
    for r in rows:
        if r["segments"] is None:
            continue
        k = r["k_workers"]
        wall = warm_s(r, "k_workers")
        peak = max(w["prover_mb"] for w in k["workers"])
        out.append(
            {
                "config": r["config"],
                "k_workers_s": wall,
                "time_ratio": wall / base_wall,
                "peak_ratio": peak / base_peak,
                "time_goal": wall / base_wall <= GOAL_TIME,
                "memory_goal": peak / base_peak <= GOAL_MEMORY,
            }
        )
    return {"unsplit_one_worker_s": base_wall, "unsplit_prover_mb": base_peak, "configs": out}


def table(rows: list[dict[str, Any]], markdown: bool) -> str:
    headers = [
        "config", "logrows", "rows", "compile s", "prove s (each)", "1 worker s",
        "K workers s", "prover MB/worker (RSS)", "rel error",
    ]  # fmt: skip
    cells = []
    for r in rows:
        one_wall = warm_s(r, "one_worker")
        if r["segments"] is None:
            one, k_wall = r["one_worker"], "-"
            peak, total = one["prover_mb"], one["rss_peak_mb"]
        else:
            one, k = r["one_worker"]["workers"][0], r["k_workers"]
            k_wall = f"{warm_s(r, 'k_workers'):.1f}"
            peak = max(w["prover_mb"] for w in k["workers"])
            total = max(w["rss_peak_mb"] for w in k["workers"])
        cells.append(
            [
                r["config"],
                ",".join(map(str, r["logrows"])),
                ",".join(map(str, r["rows"])),
                f"{r['compile_s']:.1f}",
                ",".join(f"{s:.1f}" for s in one["prove_s"]),
                f"{one_wall:.1f}",
                k_wall,
                f"{peak:.0f} ({total:.0f})",
                f"{r['accuracy']['relative_error']:.4f}",
            ]
        )
    return format_table(headers, cells, markdown)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=72)
    parser.add_argument("--width", type=int, default=72)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--segments", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--links", nargs="+", default=["polycommit", "hashed"])
    parser.add_argument("--json", type=Path, default=RESULTS / "segments.json")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    os.environ["RAYON_NUM_THREADS"] = "1"  # every child: one core per worker
    load_start = os.getloadavg()
    configs = {"unsplit": {"segments": None, "link": None}}
    for k in args.segments:
        for link in args.links if k == 2 else args.links[:1]:
            configs[f"k{k}-{link}"] = {"segments": k, "link": link}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-segments-") as tmp:
        model = build_model(Path(tmp) / "mlp.onnx", args.inputs, args.width, args.depth)
        for name, config in configs.items():
            rows.append(measure(name, config, model, str(Path(tmp) / "data"), args))
    summary = summarize(rows)
    report = {
        "model": {"inputs": args.inputs, "width": args.width, "depth": args.depth},
        "scale": args.scale,
        "rows": rows,
        "summary": summary,
        "environment": environment(load_start),
    }
    write_json(args.json, report)
    print(table(rows, args.markdown))
    print()
    for c in summary["configs"]:
        print(
            f"{c['config']}: K workers {c['k_workers_s']:.1f}s = {c['time_ratio']:.2f}x unsplit "
            f"one-worker ({summary['unsplit_one_worker_s']:.1f}s; goal <= {GOAL_TIME}x: "
            f"{'met' if c['time_goal'] else 'not met'}); prover memory/worker "
            f"{c['peak_ratio']:.2f}x (goal <= {GOAL_MEMORY}x: "
            f"{'met' if c['memory_goal'] else 'not met'})"
        )
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
