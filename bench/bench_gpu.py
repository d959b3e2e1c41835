"""Benchmark proving on the CPU against ezkl's GPU (ICICLE) path, circuit by circuit.

Each circuit is compiled once (settings search over a narrowed space, CPU, own temporary
data dir), then proven ``--repeat`` + 1 times per path, in one fresh spawned child process
per path (as a worker proves job after job; the first, cold, proof is reported apart) whose
environment selects the path:

* ``cpu``: ``CUDA_VISIBLE_DEVICES=""``, ``ENABLE_ICICLE_GPU``, ``PROVER_EZKL_CLI`` and
  ``ICICLE_BACKEND_INSTALL_DIR`` unset: the PyPI wheel's ``prove``;
* ``gpu``: what a GPU worker has: ``prover worker --gpu N`` sets
  ``CUDA_VISIBLE_DEVICES=N`` and ``ENABLE_ICICLE_GPU=true``, the GPU image sets
  ``PROVER_EZKL_CLI`` (its ``ezkl`` binary, built with ezkl's ``gpu-accelerated`` feature)
  and ``ICICLE_BACKEND_INSTALL_DIR``; the prove step then runs ``ezkl prove`` (ezkl's
  Python ``prove`` never selects the GPU: prover/circuits/backend.py).

Every proof is verified (on the CPU). Circuits: the bundled example models (``models/``, default
``digits_mlp digits_cnn``) and a CNN generated here as ONNX with ``onnx.helper`` (random
weights, fixed seed; no torch needed), sized by ``--cnn`` so that its logrows reach the
range where a GPU pays off (``medium``: logrows 18; ``large``, ``xlarge``: ~20, ~21).

The GPU path runs when ``PROVER_EZKL_CLI`` names a GPU build of the binary (it mentions
ICICLE), or with ``--paths cpu gpu``. While a GPU proof runs, ``nvidia-smi`` (when
present) is sampled: the peak memory used and utilisation show whether ezkl touched the
GPU at all. A GPU path without a GPU binary is measured too but marked ``cpu-only
build``: it proves on the CPU.

Run from the repository root; tables last, JSON (rewritten after every circuit, so a run
cut short keeps what it measured) under ``bench/results/``::

    .venv/bin/python bench/bench_gpu.py [--models digits_mlp] [--cnn small|medium|large|xlarge|none]
        [--repeat 3] [--paths cpu gpu] [--gpu 0] [--json bench/results/bench_gpu.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import mmap
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from children import first_line, in_child
from common import (
    MODELS_DIR,
    RESULTS,
    chosen_rows,
    environment,
    format_table,
    model_dirs,
    write_json,
)
from workers import compile_worker, verify_worker

from prover.circuits.compiler import CompileOptions
from prover.circuits.search import SearchSpace
from prover.proving.proofs import prove_input
from prover.store import ArtifactStore

T = TypeVar("T")
DEFAULT_MODELS = ("digits_mlp", "digits_cnn")
# (channels, image side, conv layers) of the generated CNN. Measured here: small logrows 15
# (25k rows), medium logrows 18 (187k rows); rows grow with the multiply-adds (~1.1 per
# MAC), so large should land near logrows 20 and xlarge near 21.
CNN_PRESETS = {
    "small": (4, 8, 2),
    "medium": (8, 16, 2),
    "large": (16, 16, 2),
    "xlarge": (16, 24, 2),
}
# One candidate: a fast compile; the prove time at a fixed circuit is what is compared.
SPACE = SearchSpace(scales=(8,), legs=(2,), inner_cols=(2,))
GPU_ENV = (
    "PROVER_EZKL_CLI",
    "ENABLE_ICICLE_GPU",
    "ICICLE_BACKEND_INSTALL_DIR",
    "ICICLE_SMALL_K",
    "ICICLE_LICENSE",
)
# tract (ezkl's ONNX loader) wants every Conv attribute spelled out.
CONV: dict[str, Any] = {
    "kernel_shape": [3, 3],
    "pads": [1, 1, 1, 1],
    "strides": [1, 1],
    "dilations": [1, 1],
}
DEFAULT_BACKEND_DIR = "/opt/icicle/lib/backend/halo2"  # ezkl's setup-gpu.sh default


# --- the generated CNN -------------------------------------------------------------------


def cnn_onnx(path: Path, channels: int, side: int, layers: int, seed: int = 0) -> Path:
    """Conv 3x3 (same padding) + ReLU ``layers`` times, 2x2 average pool, dense to 10."""
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(seed)
    nodes, inits, prev, c_in = [], [], "input", 1
    for i in range(layers):
        w = rng.normal(0, (2 / (9 * c_in)) ** 0.5, (channels, c_in, 3, 3)).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"w{i}"),
            numpy_helper.from_array(np.zeros(channels, np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], **CONV),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
        ]
        prev, c_in = f"r{i}", channels
    flat = channels * (side // 2) ** 2
    dense = rng.normal(0, (1 / flat) ** 0.5, (flat, 10)).astype(np.float32)
    inits += [
        numpy_helper.from_array(dense, "wd"),
        numpy_helper.from_array(np.zeros(10, np.float32), "bd"),
    ]
    nodes += [
        helper.make_node(
            "AveragePool", [prev], ["p"], kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0]
        ),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "wd", "bd"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "bench_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, side, side])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))
    return path


def cnn_case(work: Path, preset: str) -> dict[str, Any]:
    """The generated CNN as a benchmark case: ONNX file, calibration and one input."""
    channels, side, layers = CNN_PRESETS[preset]
    directory = work / f"cnn_{preset}"
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    pixels = rng.uniform(0, 1, (9, side * side)).round(4)
    return {
        "name": f"cnn_{preset}",
        "shape": f"{layers}x conv3x3 {channels}ch on {side}x{side}",
        "model": cnn_onnx(directory / "model.onnx", channels, side, layers),
        "calibration": {"input_data": [pixels[:8].reshape(-1).tolist()]},
        "input": {"input_data": [pixels[8].tolist()]},
    }


def example_case(directory: Path) -> dict[str, Any]:
    """A bundled example model as a benchmark case."""
    return {
        "name": directory.name,
        "shape": "example",
        "model": directory / "model.onnx",
        "calibration": json.loads((directory / "calibration.json").read_text()),
        "input": json.loads((directory / "input.json").read_text()),
    }


# --- the two paths -----------------------------------------------------------------------


def ezkl_build() -> dict[str, Any]:
    """The ``ezkl`` binary a GPU worker proves with (``PROVER_EZKL_CLI``), and whether it
    was built with GPU (ICICLE) support."""
    cli = os.environ.get("PROVER_EZKL_CLI")
    gpu = False
    if cli and Path(cli).is_file():
        with open(cli, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            gpu = m.find(b"icicle") >= 0 or m.find(b"ICICLE") >= 0
    return {"binary": cli, "gpu_build": gpu}


def path_env(path: str, gpu: int, backend_dir: str | None) -> dict[str, str | None]:
    """Environment changes that select a path (None: unset the variable)."""
    if path == "cpu":
        return {
            "CUDA_VISIBLE_DEVICES": "",
            "ENABLE_ICICLE_GPU": None,
            "PROVER_EZKL_CLI": None,
            "ICICLE_BACKEND_INSTALL_DIR": None,
        }
    return {
        "PROVER_EZKL_CLI": os.environ.get("PROVER_EZKL_CLI"),
        # nvidia-smi numbers GPUs by PCI bus; CUDA, unless told so, fastest first.
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUDA_VISIBLE_DEVICES": str(gpu),
        "ENABLE_ICICLE_GPU": "true",
        "ICICLE_BACKEND_INSTALL_DIR": backend_dir,
    }


CPU = path_env("cpu", 0, None)  # compiles and verifies run on the CPU path


def apply_env(changes: dict[str, str | None]) -> None:
    for name, value in changes.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def backend_dir() -> str | None:
    """ICICLE_BACKEND_INSTALL_DIR as set, else ezkl's default install dir when present."""
    given = os.environ.get("ICICLE_BACKEND_INSTALL_DIR")
    if given:
        return given
    return DEFAULT_BACKEND_DIR if Path(DEFAULT_BACKEND_DIR).is_dir() else None


# --- child processes (module level, so the spawn context can import them) ---------------


def on_path(env: dict[str, str | None], fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` under a path's environment (``path_env``): in a fresh child, where
    ezkl reads it when it loads."""
    apply_env(env)
    return fn(*args)


def prove_runs(data_dir: str, circuit_id: str, inp: Any, count: int) -> list[dict[str, Any]]:
    """``count`` fresh proofs in one process (as a worker proves one job after another);
    returns their ids and timings."""
    store, runs = ArtifactStore(Path(data_dir)), []
    for _ in range(count):
        record = prove_input(store, circuit_id, inp, fresh=True)
        runs.append({"proof_id": record["id"], **record["timings"]})
        runs[-1]["proof_bytes"] = record["proof_bytes"]
    return runs


# --- nvidia-smi ------------------------------------------------------------------------


def nvidia_smi(query: str, gpu: int | None = None) -> list[list[str]]:
    """Rows of an ``nvidia-smi --query-gpu`` answer; [] without nvidia-smi or a GPU."""
    if not shutil.which("nvidia-smi"):
        return []
    cmd = ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"]
    if gpu is not None:
        cmd += ["-i", str(gpu)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [[c.strip() for c in line.split(",")] for line in out.splitlines() if line.strip()]


class GpuSampler:
    """Peak memory used (MB) and utilisation (%) of one GPU while a block runs."""

    def __init__(self, gpu: int, period_s: float = 0.2) -> None:
        self.gpu, self.period_s = gpu, period_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for mem, util in nvidia_smi("memory.used,utilization.gpu", self.gpu):
                with contextlib.suppress(ValueError):  # "[N/A]" on some GPUs
                    self.samples.append((float(mem), float(util)))
            self._stop.wait(self.period_s)

    def __enter__(self) -> GpuSampler:
        if shutil.which("nvidia-smi"):
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    def summary(self, base_mb: float | None) -> dict[str, float | None]:
        if not self.samples:
            return {"gpu_peak_mb": None, "gpu_extra_mb": None, "gpu_peak_util": None}
        peak = max(m for m, _ in self.samples)
        extra = None if base_mb is None else peak - base_mb
        return {
            "gpu_peak_mb": peak,
            "gpu_extra_mb": extra,
            "gpu_peak_util": max(u for _, u in self.samples),
        }


# --- measurement -------------------------------------------------------------------------


def prove_path(
    case: dict[str, Any], data_dir: str, circuit_id: str, path: str, args: argparse.Namespace
) -> dict[str, Any]:
    """One process proving ``--repeat`` + 1 times on one path, every proof verified. The
    first proof is reported apart (``cold_prove_s``: it also loads the libraries and, on
    the GPU, creates the CUDA context); ``prove_s`` is the median of the others."""
    env = path_env(path, args.gpu, backend_dir())
    base = nvidia_smi("memory.used", args.gpu)
    print(f"[bench] {case['name']}: {args.repeat + 1} {path} proofs", flush=True)
    with GpuSampler(args.gpu) as sampler:
        runs = in_child(
            on_path, env, prove_runs, data_dir, circuit_id, case["input"], args.repeat + 1
        )
    for run in runs:
        if not in_child(on_path, CPU, verify_worker, data_dir, run["proof_id"])["valid"]:
            raise RuntimeError(f"a {path} proof does not verify")
    base_mb = float(base[0][0]) if base and base[0][0].replace(".", "").isdigit() else None
    return {
        "prove_s": statistics.median(r["prove_s"] for r in runs[1:]),
        "prove_runs_s": [r["prove_s"] for r in runs[1:]],
        "cold_prove_s": runs[0]["prove_s"],
        "witness_s": statistics.median(r["witness_s"] for r in runs[1:]),
        "proof_bytes": runs[-1]["proof_bytes"],
        "env": env,
        **sampler.summary(base_mb),
    }


def compiled_row(compiled: dict[str, Any]) -> dict[str, Any]:
    """What a row reports of the compiled circuit."""
    record = compiled["record"]
    return {
        "circuit_id": record["id"],
        "logrows": record["logrows"],
        "num_rows": chosen_rows(record),
        "chosen": record["search"]["chosen"],
        "setup_s": record["timings"]["setup_s"],
        "compile_s": compiled["wall_s"],
        "pk_bytes": record["pk_bytes"],
    }


def measure(case: dict[str, Any], paths: Sequence[str], args: argparse.Namespace) -> dict:
    """Compile once, then prove on every path; a failure is kept in ``error``."""
    row: dict[str, Any] = {"model": case["name"], "shape": case["shape"], "error": None}
    model, calibration = str(case["model"]), case["calibration"]
    options = CompileOptions(space=SPACE, measure_top=1, tolerance=args.tolerance)
    with tempfile.TemporaryDirectory(prefix=f"bench-gpu-{case['name']}-") as data_dir:
        print(f"[bench] compiling {case['name']}", flush=True)
        try:
            compiled = in_child(on_path, CPU, compile_worker, model, calibration, options, data_dir)
        except Exception as exc:
            row["error"] = f"compile: {first_line(exc)}"
            return row
        row.update(compiled_row(compiled))
        for path in paths:
            try:
                row[path] = prove_path(case, data_dir, row["circuit_id"], path, args)
            except Exception as exc:
                row[path] = {"error": first_line(exc)}
    cpu, gpu = row.get("cpu", {}), row.get("gpu", {})
    if cpu.get("prove_s") and gpu.get("prove_s"):
        row["speedup"] = cpu["prove_s"] / gpu["prove_s"]
    return row


# --- output ------------------------------------------------------------------------------


def cell(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def results_table(rows: list[dict[str, Any]], gpu_build: bool, markdown: bool) -> str:
    """One row per circuit: size, CPU and GPU prove time, speedup, GPU evidence."""
    headers = [
        "model",
        "logrows",
        "rows",
        "setup s",
        "cpu prove s",
        "gpu prove s",
        "gpu cold s",
        "speedup",
        "gpu +MB",
        "gpu util %",
        "note",
    ]
    cells = []
    for r in rows:
        if r["error"]:
            cells.append([r["model"], *["-"] * 9, r["error"][:60]])
            continue
        cpu, gpu = r.get("cpu", {}), r.get("gpu", {})
        notes = [f"{p}: {r[p]['error'][:40]}" for p in ("cpu", "gpu") if r.get(p, {}).get("error")]
        if "gpu" in r and not gpu_build:
            notes.append("cpu-only build")
        cells.append(
            [
                r["model"],
                str(r["logrows"]),
                cell(r["num_rows"], "d"),
                f"{r['setup_s']:.2f}",
                cell(cpu.get("prove_s"), ".3f"),
                cell(gpu.get("prove_s"), ".3f"),
                cell(gpu.get("cold_prove_s"), ".3f"),
                cell(r.get("speedup"), ".2f"),
                cell(gpu.get("gpu_extra_mb"), ".0f"),
                cell(gpu.get("gpu_peak_util"), ".0f"),
                "; ".join(notes),
            ]
        )
    return format_table(headers, cells, markdown)


def choose_paths(requested: Sequence[str] | None, build: dict[str, Any]) -> list[str]:
    """The paths to measure: as asked, else cpu plus gpu when there is a GPU binary."""
    if requested:
        return list(dict.fromkeys(requested))
    return ["cpu", "gpu"] if build["gpu_build"] else ["cpu"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models",
        nargs="*",
        default=list(DEFAULT_MODELS),
        help=f"example models under {MODELS_DIR.name}/ (none: only the CNN)",
    )
    parser.add_argument(
        "--cnn",
        choices=[*CNN_PRESETS, "none"],
        default="medium",
        help="size of the generated CNN (channels, side, layers: "
        + ", ".join(f"{k} {v}" for k, v in CNN_PRESETS.items())
        + ")",
    )
    parser.add_argument("--repeat", type=int, default=3, help="proofs per path (median)")
    parser.add_argument(
        "--paths",
        nargs="+",
        choices=["cpu", "gpu"],
        help="default: cpu, plus gpu when PROVER_EZKL_CLI is a GPU build of ezkl",
    )
    parser.add_argument("--gpu", type=int, default=0, help="GPU index of the gpu path")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1.0,
        help="compile accuracy tolerance (absolute; the CNN is untrained)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "bench_gpu.json")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def run(args: argparse.Namespace, work: Path) -> int:
    """Measure every case, rewriting the JSON report after each; print the table."""
    started, load_start = time.perf_counter(), os.getloadavg()
    build = ezkl_build()
    paths = choose_paths(args.paths, build)
    cases = [example_case(d) for d in model_dirs(args.models)] if args.models else []
    if args.cnn != "none":
        cases.append(cnn_case(work, args.cnn))
    gpus = nvidia_smi("index,name,memory.total,driver_version")
    report: dict[str, Any] = {
        "environment": {
            **environment(load_start),
            "ezkl_build": build,
            "gpus": gpus,
            "env": {k: os.environ.get(k) for k in (*GPU_ENV, "RAYON_NUM_THREADS")},
        },
        "paths": paths,
        "repeat": args.repeat,
        "rows": [],
    }
    print(f"[bench] ezkl gpu build: {build['gpu_build']}; paths: {paths}; gpus: {gpus}", flush=True)
    for case in cases:
        report["rows"].append(measure(case, paths, args))
        report["environment"]["loadavg_end"] = os.getloadavg()
        report["wall_s"] = time.perf_counter() - started
        write_json(args.json, report)
    print()
    print(results_table(report["rows"], build["gpu_build"], args.markdown))
    print(f"raw numbers written to {args.json}")
    failed = [
        r for r in report["rows"] if r["error"] or any(r.get(p, {}).get("error") for p in paths)
    ]
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-models-") as work:
        return run(args, Path(work))


if __name__ == "__main__":
    sys.exit(main())
