"""Compiling and proving for the benchmarks: the workers, each run in a fresh child process
(module level, so the spawn context can import them), and the compile-then-prove loop over
them. Their children import this module: it imports nothing a prover does not need (no
chain), so that a child's peak memory is the prover's."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from children import first_line, in_child, peak_rss_mb

from prover.circuits.compiler import CompileOptions, compile_model
from prover.config import Settings
from prover.proving.proofs import prove_input, verify
from prover.store import ArtifactStore


def compile_worker(
    model: str, calibration: Any, options: CompileOptions, data_dir: str
) -> dict[str, Any]:
    """Compile one circuit; returns its record, the wall time and this process's peak MB."""
    settings = Settings(data_dir=Path(data_dir))
    started = time.perf_counter()
    record = compile_model(
        Path(model), calibration, options, ArtifactStore(settings.data_dir), settings
    )
    return {"record": record, "wall_s": time.perf_counter() - started, "peak_mb": peak_rss_mb()}


def prove_worker(data_dir: str, circuit_id: str, input_obj: Any) -> dict[str, Any]:
    """Prove one fresh inference; returns the proof's id, outputs, timings, size and peak
    MB (before proving too: what the imports alone take)."""
    store = ArtifactStore(Path(data_dir))
    base_mb, load = peak_rss_mb(), os.getloadavg()[0]
    record = prove_input(store, circuit_id, input_obj, fresh=True)
    return {
        "proof_id": record["id"],
        "outputs": record["outputs"],
        "witness_s": record["timings"]["witness_s"],
        "prove_s": record["timings"]["prove_s"],
        "inline_verify_s": record["timings"]["verify_s"],
        "proof_bytes": record["proof_bytes"],
        "base_mb": base_mb,
        "peak_mb": peak_rss_mb(),
        "loadavg_1m": load,
    }


def verify_worker(data_dir: str, proof_id: str) -> dict[str, Any]:
    """Verify one stored proof; returns ezkl's verdict, verify time and peak MB."""
    result = verify(ArtifactStore(Path(data_dir)), proof_id)
    return {"valid": result["valid"], "verify_s": result["verify_s"], "peak_mb": peak_rss_mb()}


@dataclasses.dataclass
class Run:
    """What ``compile_and_prove`` measured: the compile's result (empty if it failed) and
    seconds, each proof and its verification, and the failure that ended the run."""

    compile_s: float
    compiled: dict[str, Any] = dataclasses.field(default_factory=dict)
    proofs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    verifies: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    error: str | None = None


def compile_and_prove(
    label: str,
    compile_call: Callable[[], dict[str, Any]],
    data_dir: str,
    input_obj: Any,
    repeat: int,
) -> Run:
    """Compile (``compile_call``, a picklable call returning what ``compile_worker`` does),
    then prove ``input_obj`` ``repeat`` times and verify each proof, every step in its own
    child. A failure ends the run and is kept in ``error``, so one model that ezkl cannot
    handle does not stop a benchmark."""
    print(f"[bench] compiling {label}", flush=True)
    started = time.perf_counter()
    try:
        compiled = in_child(compile_call)
    except Exception as exc:
        return _failed(label, Run(time.perf_counter() - started), f"compile: {first_line(exc)}")
    run = Run(compiled["wall_s"], compiled)
    try:
        for i in range(repeat):
            print(f"[bench] proving {label} {i + 1}/{repeat}", flush=True)
            proof = in_child(prove_worker, data_dir, compiled["record"]["id"], input_obj)
            check = in_child(verify_worker, data_dir, proof["proof_id"])
            if not check["valid"]:
                raise RuntimeError("a fresh proof does not verify")
            run.proofs.append(proof)
            run.verifies.append(check)
    except Exception as exc:
        return _failed(label, run, f"prove/verify: {first_line(exc)}")
    return run


def _failed(label: str, run: Run, error: str) -> Run:
    print(f"[bench] {label} failed: {error}", flush=True)
    run.error = error
    return run
