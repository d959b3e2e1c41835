"""Gas of the proof market: opening a request, locking it and fulfilling it with a real
proof, against the verifier's own gas for the same proof.

For each example model (a directory under ``models/`` with a ``model.onnx``), in a fresh
temporary data dir and on a fresh anvil chain: compile (settings search; ezkl's reusable
verifier where the circuit's own is over EIP-170), prove the model's ``input.json``,
deploy and register the circuit (``deploy_circuit``) and the market (``market_address``);
a requester opens a request for that input, a second account locks it, fulfils it with
the proof and claims its payment. Two requests (two inputs): "fulfil gas" is the
first's, "fulfil gas again" the second's (a fulfilment writes no per-account slot, so
they should agree), "claim gas" the prover's claim of the first.

"verify gas" is an eth_estimateGas of the verifier's ``verifyProof`` with the same proof
(``verify_onchain``: the base 21,000 and the calldata included, as in the transactions),
"submit gas" what ``ProvenResults.submit`` alone (what the market calls) uses, sent and
undone (an estimate would add the 1/64 of the gas a call must leave its caller). The issue's
goal: fulfil <= verify + 80,000.

Run from the repository root (needs scripts/setup.sh's npm packages)::

    .venv/bin/python bench/bench_market.py [--models digits_mlp] [--json out.json] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from bench_chain import deployable
from common import format_table, model_dirs, quiet_ezkl, write_json
from web3.types import RPCEndpoint

from prover.chain.client import Chain, connect
from prover.chain.contracts import contract, infrastructure, transact
from prover.chain.evm_verifier import verifier_artifact
from prover.chain.market import (
    Offer,
    claim,
    fulfil,
    input_count,
    lock,
    market_address,
    open_request,
)
from prover.chain.node import ANVIL_DEV_KEY, LocalChain
from prover.chain.onchain import deploy_circuit, verifier_arguments, verify_onchain
from prover.circuits.compiler import CompileOptions, compile_model
from prover.config import Settings
from prover.errors import ProverError
from prover.proving.proofs import prove_input
from prover.store import ArtifactStore

# anvil's second development account (public, well-known): the prover.
PROVER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
GOAL = 80_000  # fulfil's gas over the verifier's
COLUMNS = (
    "model",
    "verifier",
    "instances",
    "open gas",
    "lock gas",
    "fulfil gas",
    "fulfil gas again",
    "claim gas",
    "verify gas",
    "submit gas",
    "market over submit",
    "over verify",
    "goal",
)


def market_gas(store: ArtifactStore, requester: Chain, prover: Chain, proof_ids: list[str]) -> dict:
    """For each proof, a request for its input opened, locked, fulfilled and claimed: the
    gas of each transaction (fulfil's of each proof), and, for the last proof, what
    ProvenResults.submit alone uses, sent (and undone) before its fulfilment."""
    address = market_address(store, requester)
    results = contract(prover, "ProvenResults", infrastructure(store, prover)["results_address"])
    fulfils, claims, gas = [], [], {}
    for proof_id in proof_ids:
        circuit = store.read_record("circuits", store.read_record("proofs", proof_id)["circuit_id"])
        proof, instances = verifier_arguments(store.path("proofs", proof_id) / "proof.json")
        vka = [bytes.fromhex(w[2:]) for w in verifier_artifact(store, circuit["id"]).get("vka", [])]
        start = int(requester.w3.eth.get_block("latest")["timestamp"])
        offer = Offer(10**15, 10**16, start, 60, 600, 3600, 10**15)
        inputs = instances[: input_count(circuit)]
        request, opened = open_request(requester, address, circuit["id"], inputs, offer)
        locked = lock(prover, address, request)
        submit = results.functions.submit(bytes.fromhex(circuit["id"]), proof, instances, vka)
        gas = {
            "instances": len(instances),
            "open gas": opened["gasUsed"],
            "lock gas": locked["gasUsed"],
            "submit gas": _used_alone(prover, submit),
        }
        fulfils.append(fulfil(prover, address, request, proof, instances, vka)["gasUsed"])
        claims.append(claim(prover, address, request)["gasUsed"])
    return {
        **gas,
        "fulfil gas": fulfils[0],
        "fulfil gas again": fulfils[-1],
        "claim gas": claims[0],
    }


def _used_alone(chain: Chain, call: Any) -> int:
    """The gas a transaction uses, sent and then undone (anvil's evm_snapshot/evm_revert)."""
    state = chain.w3.provider.make_request(RPCEndpoint("evm_snapshot"), [])["result"]
    try:
        return int(transact(chain, call)["gasUsed"])
    finally:
        chain.w3.provider.make_request(RPCEndpoint("evm_revert"), [state])


def measure(model_dir: Path) -> dict[str, Any]:
    """One row: compile, prove, deploy, then the market's transactions on a fresh chain."""
    row: dict[str, Any] = {"model": model_dir.name}
    calibration = json.loads((model_dir / "calibration.json").read_text())
    sample = json.loads((model_dir / "input.json").read_text())
    # A second input, for a second request: the first's values halved (still in range).
    halved = {"input_data": [[v / 2 for v in row] for row in sample["input_data"]]}
    with tempfile.TemporaryDirectory() as data_dir, LocalChain() as node:
        settings = Settings(data_dir=Path(data_dir))
        store = ArtifactStore(settings.data_dir)
        requester = connect(node.rpc_url, ANVIL_DEV_KEY)
        try:
            circuit = deployable(
                lambda options: compile_model(
                    model_dir / "model.onnx", calibration, options, store, settings
                ),
                CompileOptions(),
                store,
            )
            proofs = [prove_input(store, circuit["id"], s)["id"] for s in (sample, halved)]
            deployment = deploy_circuit(store, circuit["id"], requester)
            verify = verify_onchain(store, proofs[-1], requester)
            gas = market_gas(store, requester, connect(node.rpc_url, PROVER_KEY), proofs)
        except ProverError as exc:
            return {**row, "error": exc.message[:200]}
    over = max(gas["fulfil gas"], gas["fulfil gas again"]) - verify["gas"]
    return {
        **row,
        **gas,
        "verifier": "reusable" if deployment["reusable"] else "own",
        "verify gas": verify["gas"],
        "market over submit": gas["fulfil gas again"] - gas["submit gas"],
        "over verify": over,
        "goal": "met" if over <= GOAL else "missed",
    }


def render(rows: list[dict[str, Any]], markdown: bool) -> str:
    cells = [[str(r.get(c, "FAILED" if c == "verifier" else "-")) for c in COLUMNS] for r in rows]
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
        print(f"[market] {model_dir.name}", flush=True)
        rows.append(measure(model_dir))
    print(render(rows, args.markdown))
    for row in rows:
        if "error" in row:
            print(f"FAILED {row['model']}: {row['error']}")
    if args.json:
        write_json(args.json, rows)


if __name__ == "__main__":
    main()
