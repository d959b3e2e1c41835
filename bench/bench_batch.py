"""Batch circuits: what proving N inferences in one circuit costs and saves, per result.

For each model and each batch size N: the batch-N circuit (``compile_batch``, settings
search, inputs and outputs hashed by default, so a proof's instances are 2 field
elements per item), ``--repeat`` fresh batch proofs of N calibration samples (timed: wall,
and the process's CPU seconds, with ``RAYON_NUM_THREADS`` 1 unless ``--threads`` says
otherwise, so CPU seconds are core seconds), then on a fresh anvil chain: the verifier
deployed, registered and the batch size set (``deploy_batch_circuit``), the verifier's own
gas for the proof (``verify_onchain``, an eth_call estimate including calldata) and the
acceptance of all N results in one transaction (``submit_batch``).

For comparison, each model's ordinary single circuit (public inputs and outputs, the
product's default) is proven and accepted with ``submit_result`` (row "single").

Run from the repository root, on an otherwise idle machine::

    .venv/bin/python bench/bench_batch.py [--models digits_mlp] [--sizes 1 4 16]
        [--visibility hashed] [--mode auto|axis|copies] [--objective verify-gas]
        [--repeat 2] [--json bench/results/bench_batch.json] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import sys

if "--threads" in sys.argv:  # before ezkl starts its thread pool
    os.environ["RAYON_NUM_THREADS"] = sys.argv[sys.argv.index("--threads") + 1]
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import json
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_chain import deployable
from common import (
    RESULTS,
    chosen_rows,
    environment,
    format_table,
    model_dirs,
    quiet_ezkl,
    write_json,
)

from prover.chain.batches import deploy_batch_circuit, submit_batch
from prover.chain.client import Chain, connect
from prover.chain.node import ANVIL_DEV_KEY, LocalChain
from prover.chain.onchain import deploy_circuit, submit_result, verify_onchain
from prover.circuits.batch import compile_batch
from prover.circuits.compiler import CompileOptions, compile_model
from prover.circuits.data import parse_samples
from prover.circuits.layouts import batch_input, stored_layout
from prover.circuits.search import Visibility
from prover.config import Settings
from prover.errors import ProverError
from prover.proving.proofs import prove_input
from prover.store import ArtifactStore

COLUMNS = (
    "model",
    "N",
    "layout",
    "logrows",
    "compile s",
    "prove s",
    "results/CPU-s",
    "latency s",
    "instances",
    "verify gas",
    "accept gas",
    "verify gas/result",
    "accept gas/result",
)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _prove_timed(store: ArtifactStore, circuit_id: str, data: Any, repeat: int) -> dict:
    """``repeat`` fresh proofs of the same input: median wall, CPU and prove seconds."""
    runs = []
    proof: dict[str, Any] = {}
    for _ in range(repeat):
        cpu, wall = _cpu_s(), time.perf_counter()
        proof = prove_input(store, circuit_id, data, fresh=True)
        runs.append(
            {
                "wall_s": time.perf_counter() - wall,
                "cpu_s": _cpu_s() - cpu,
                **proof["timings"],
            }
        )
    return {
        "proof": proof,
        "runs": runs,
        **{k: statistics.median(r[k] for r in runs) for k in runs[0]},
    }


def _chain_costs(
    store: ArtifactStore, proof_id: str, chain: Chain, n: int | None
) -> dict[str, Any]:
    """Deploy, verify (eth_call gas) and accept one proof; n None: a single circuit."""
    circuit_id = store.read_record("proofs", proof_id)["circuit_id"]
    if n is None:
        deployment = deploy_circuit(store, circuit_id, chain)
    else:
        deployment = deploy_batch_circuit(store, circuit_id, chain)
    answer = verify_onchain(store, proof_id, chain)
    started = time.perf_counter()
    accepted = (
        submit_result(store, proof_id, chain) if n is None else submit_batch(store, proof_id, chain)
    )
    if not accepted["accepted"]:
        raise ProverError(f"acceptance refused: {accepted['reason']}")
    return {
        "code_bytes": deployment["runtime_size"],
        "deploy_gas": deployment["gas_used"],
        "verify_gas": answer["gas"],
        "calldata_bytes": answer["calldata_bytes"],
        "accept_gas": accepted["gas_used"],
        "accept_s": time.perf_counter() - started,
    }


def _row(
    model: str, n: int, layout: str, circuit: dict, timed: dict, costs: dict, compile_s: float
) -> dict[str, Any]:
    instances = sum(len(r) for r in timed["proof"]["instances"])
    return {
        "model": model,
        "N": n,
        "layout": layout,
        "chosen": circuit["search"]["chosen"],
        "logrows": circuit["logrows"],
        "num_rows": chosen_rows(circuit),
        "compile_s": round(compile_s, 1),
        "prove_s": round(timed["prove_s"], 3),
        "witness_s": round(timed["witness_s"], 3),
        "cpu_s": round(timed["cpu_s"], 3),
        "results_per_cpu_s": round(n / timed["cpu_s"], 3),
        "latency_s": round(timed["wall_s"] + costs["accept_s"], 3),
        "instances": instances,
        "verifier": "reusable" if circuit.get("reusable_verifier") else "own",
        "pk_bytes": circuit["pk_bytes"],
        **costs,
        "verify_gas_per_result": round(costs["verify_gas"] / n),
        "accept_gas_per_result": round(costs["accept_gas"] / n),
        "prove_runs": timed["runs"],
    }


def measure_single(model_dir: Path, chain: Chain, repeat: int) -> dict[str, Any]:
    """The model's ordinary circuit (public inputs and outputs) and ``submit_result``."""
    calibration = json.loads((model_dir / "calibration.json").read_text())
    sample = json.loads((model_dir / "input.json").read_text())
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir))
        store = ArtifactStore(settings.data_dir)
        started = time.perf_counter()
        circuit = compile_model(
            model_dir / "model.onnx", calibration, CompileOptions(), store, settings
        )
        compile_s = time.perf_counter() - started
        timed = _prove_timed(store, circuit["id"], sample, repeat)
        costs = _chain_costs(store, timed["proof"]["id"], chain, None)
    return _row(model_dir.name, 1, "single", circuit, timed, costs, compile_s)


def measure_batch(
    model_dir: Path, n: int, options: CompileOptions, mode: str, chain: Chain, repeat: int
) -> dict[str, Any]:
    """The batch-n circuit, ``repeat`` proofs of n calibration samples, acceptance."""
    calibration = json.loads((model_dir / "calibration.json").read_text())
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir))
        store = ArtifactStore(settings.data_dir)
        started = time.perf_counter()
        circuit = deployable(
            lambda o: compile_batch(
                model_dir / "model.onnx", n, calibration, o, store, settings, mode=mode
            ),
            options,
            store,
        )
        compile_s = time.perf_counter() - started
        layout = stored_layout(store, circuit)
        samples = parse_samples(calibration, list(layout.inputs))
        items = [[a.tolist() for a in samples[i % len(samples)]] for i in range(n)]
        timed = _prove_timed(store, circuit["id"], batch_input(layout, items), repeat)
        costs = _chain_costs(store, timed["proof"]["id"], chain, n)
    return _row(model_dir.name, n, layout.mode, circuit, timed, costs, compile_s)


def render(rows: list[dict[str, Any]], markdown: bool) -> str:
    keys = (
        "model",
        "N",
        "layout",
        "logrows",
        "compile_s",
        "prove_s",
        "results_per_cpu_s",
        "latency_s",
        "instances",
        "verify_gas",
        "accept_gas",
        "verify_gas_per_result",
        "accept_gas_per_result",
    )
    cells = [[str(r.get(k, "FAILED" if k == "logrows" else "-")) for k in keys] for r in rows]
    return format_table(COLUMNS, cells, markdown)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["digits_mlp"], help="dirs under models/")
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--visibility", default="hashed", help="of inputs and outputs")
    parser.add_argument("--mode", default="copies", choices=("auto", "axis", "copies"))
    parser.add_argument("--objective", default="verify-gas", choices=("prove-time", "verify-gas"))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", default="1", help="RAYON_NUM_THREADS for proving")
    parser.add_argument("--no-single", action="store_true", help="skip the single-circuit row")
    parser.add_argument("--json", type=Path, default=RESULTS / "bench_batch.json")
    parser.add_argument("--markdown", action="store_true")
    return parser


def main() -> None:
    args = _parser().parse_args()
    quiet_ezkl()
    load_start = os.getloadavg()
    visibility = Visibility(input=args.visibility, output=args.visibility)
    options = CompileOptions(visibility=visibility, objective=args.objective, measure_top=1)
    rows: list[dict[str, Any]] = []
    for model_dir in model_dirs(args.models):
        with LocalChain() as node:
            chain = connect(node.rpc_url, ANVIL_DEV_KEY)
            jobs: list[tuple[str, Any]] = [] if args.no_single else [("single", None)]
            jobs += [(f"N={n}", n) for n in args.sizes]
            for label, n in jobs:
                print(f"[batch] {model_dir.name} {label}", flush=True)
                try:
                    if n is None:
                        row = measure_single(model_dir, chain, args.repeat)
                    else:
                        row = measure_batch(model_dir, n, options, args.mode, chain, args.repeat)
                except ProverError as exc:
                    row = {"model": model_dir.name, "N": n or 1, "error": exc.message[:300]}
                rows.append(row)
                print(render([row], False).splitlines()[-1], flush=True)
    print(render(rows, args.markdown))
    for row in rows:
        if "error" in row:
            print(f"FAILED {row['model']} N={row['N']}: {row['error']}")
    env = {**environment(load_start), "rayon_threads": os.environ["RAYON_NUM_THREADS"]}
    report = {"options": vars(args) | {"json": str(args.json)}, "rows": rows, "environment": env}
    write_json(args.json, report)


if __name__ == "__main__":
    main()
