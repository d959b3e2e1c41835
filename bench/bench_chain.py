"""Gas report: deploying and using each example model's verifier on a local anvil chain.

For every example model (a directory under ``models/`` with a ``model.onnx``) and for each
circuit strategy (ezkl's default calibration; the settings search optimising proving time;
the settings search optimising verify gas), in a fresh
temporary data dir: compile, prove the model's ``input.json``, then on a fresh anvil
chain deploy the verifier and register the circuit (``deploy_circuit``), ask the verifier
for its answer (``verify_onchain``: gas of the call, calldata size) and submit the result
to ProvenResults (``submit_result``). A verifier over EIP-170's 24,576 bytes is retried
with ezkl's reusable verifier.

Run from the repository root (needs scripts/setup.sh's npm packages)::

    .venv/bin/python bench/bench_chain.py [--models digits_mlp] [--json out.json] [--markdown]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import format_table, model_dirs, quiet_ezkl, write_json

from prover.chain.client import connect
from prover.chain.evm_verifier import verifier_artifact
from prover.chain.node import ANVIL_DEV_KEY, LocalChain
from prover.chain.onchain import deploy_circuit, submit_result, verify_onchain
from prover.circuits.compiler import CompileOptions, compile_model
from prover.config import Settings
from prover.errors import ProverError
from prover.proving.proofs import prove_input
from prover.store import ArtifactStore

COLUMNS = (
    "model",
    "strategy",
    "logrows",
    "cols",
    "verifier",
    "code B",
    "deploy gas",
    "register gas",
    "verify gas",
    "calldata B",
    "submit gas",
)


STRATEGIES = {
    "ezkl-default": CompileOptions(strategy="ezkl-default"),
    "search": CompileOptions(strategy="search"),
    "search/verify-gas": CompileOptions(strategy="search", objective="verify-gas"),
}


def deployable(
    compile_with: Callable[[CompileOptions], dict[str, Any]],
    options: CompileOptions,
    store: ArtifactStore,
) -> dict[str, Any]:
    """The circuit ``compile_with(options)`` makes, made again with ezkl's reusable verifier
    where its own verifier is over EIP-170 (then it could not be deployed)."""
    circuit = compile_with(options)
    try:
        verifier_artifact(store, circuit["id"])
    except ProverError as exc:
        if "EIP-170" not in exc.message:
            raise
        circuit = compile_with(dataclasses.replace(options, reusable_verifier=True))
    return circuit


def measure(model_dir: Path, strategy: str) -> dict[str, Any]:
    """One row: compile, prove, deploy, verify and submit on a fresh chain."""
    row: dict[str, Any] = {"model": model_dir.name, "strategy": strategy}
    calibration = json.loads((model_dir / "calibration.json").read_text())
    sample = json.loads((model_dir / "input.json").read_text())
    with tempfile.TemporaryDirectory() as data_dir, LocalChain() as node:
        settings = Settings(data_dir=Path(data_dir))
        store = ArtifactStore(settings.data_dir)
        chain = connect(node.rpc_url, ANVIL_DEV_KEY)
        try:
            circuit = deployable(
                lambda options: compile_model(
                    model_dir / "model.onnx", calibration, options, store, settings
                ),
                STRATEGIES[strategy],
                store,
            )
            proof = prove_input(store, circuit["id"], sample)
            deployment = deploy_circuit(store, circuit["id"], chain)
            answer = verify_onchain(store, proof["id"], chain)
            submitted = submit_result(store, proof["id"], chain)
        except ProverError as exc:
            return {**row, "error": exc.message[:200]}
    return {
        **row,
        "logrows": circuit["logrows"],
        "cols": circuit["settings"]["num_inner_cols"],
        "verifier": "reusable" if deployment["reusable"] else "own",
        "code B": deployment["runtime_size"],
        "deploy gas": deployment["gas_used"],
        "register gas": deployment["register_gas_used"],
        "verify gas": answer["gas"],
        "calldata B": answer["calldata_bytes"],
        "submit gas": submitted["gas_used"] if submitted["accepted"] else None,
        "valid": answer["valid"],
        "accepted": submitted["accepted"],
    }


def render(rows: list[dict[str, Any]], markdown: bool) -> str:
    cells = [[str(r.get(c, "FAILED" if c == "logrows" else "-")) for c in COLUMNS] for r in rows]
    return format_table(COLUMNS, cells, markdown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="model dirs under models/")
    parser.add_argument("--json", type=Path, help="write raw numbers here")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    quiet_ezkl()
    rows = []
    for model_dir in model_dirs(args.models):
        for strategy in STRATEGIES:
            print(f"[chain] {model_dir.name} ({strategy})", flush=True)
            rows.append(measure(model_dir, strategy))
    print(render(rows, args.markdown))
    for row in rows:
        if "error" in row:
            print(f"FAILED {row['model']} ({row['strategy']}): {row['error']}")
    if args.json:
        write_json(args.json, rows)


if __name__ == "__main__":
    main()
