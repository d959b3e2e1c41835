"""Gas report: a segmented model's result accepted on chain in one transaction.

A 4-8-6-2 ReLU MLP split by the product's own planner into K = 2 or 3 segments
(``plan_segmented``: one pinned scale, ``hashed`` or ``polycommit`` links), proven with
``prove_composite``; K = 1 is the unsplit model through ProvenResults, for comparison. For
each, in a fresh temporary data dir and a fresh anvil chain: deploy and register
(``deploy_composite``), the view check's gas (``verify_composite_onchain``) and the
submission's gas (``submit_composite``).

Run from the repository root (needs scripts/setup.sh's npm packages)::

    .venv/bin/python bench/bench_composite_chain.py [--json out.json] [--markdown]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path
from typing import Any

from common import format_table, write_json

from prover.chain.client import connect
from prover.chain.composites import (
    deploy_composite,
    submit_composite,
    verify_composite_onchain,
)
from prover.chain.node import ANVIL_DEV_KEY, LocalChain
from prover.chain.onchain import deploy_circuit, submit_result, verify_onchain
from prover.circuits.compiler import CompileOptions, compile_model
from prover.circuits.links import Link
from prover.circuits.search import SearchSpace
from prover.circuits.segment_build import build_segmented
from prover.circuits.segments import plan_segmented
from prover.config import Settings
from prover.proving.composite import prove_composite
from prover.proving.plans import plan_proof
from prover.proving.proofs import prove_input
from prover.store import ArtifactStore

COLUMNS = ("link", "K", "logrows", "deploy gas", "register gas", "check gas", "submit gas")


LINKS: tuple[Link, ...] = ("hashed", "polycommit")
SAMPLE = [0.5, -1.25, 0.75, 2.0]
OPTIONS = CompileOptions(space=SearchSpace(scales=(10,), legs=(2,), inner_cols=(2,)), measure_top=1)


def make_mlp3(path: Path) -> Path:
    """The 4-8-6-2 ReLU MLP (two single-tensor cut points: after each ReLU)."""
    import torch

    from prover.circuits.export import export_onnx

    torch.manual_seed(0)
    layers = [torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 6), torch.nn.ReLU()]
    return export_onnx(torch.nn.Sequential(*layers, torch.nn.Linear(6, 2)), torch.zeros(1, 4), path)


def calibration() -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(1)
    return {"input_data": [rng.standard_normal(4 * 12).round(4).tolist()]}


def _unsplit(root: Path) -> dict[str, Any]:
    settings = Settings(data_dir=root / "data", measure_top=1)
    store = ArtifactStore(settings.data_dir)
    model = make_mlp3(root / "mlp3.onnx")
    circuit = compile_model(model, calibration(), OPTIONS, store, settings)
    proof = prove_input(store, circuit["id"], {"input_data": [SAMPLE]})
    with LocalChain() as node:
        chain = connect(node.rpc_url, ANVIL_DEV_KEY)
        deployed = deploy_circuit(store, circuit["id"], chain)
        check = verify_onchain(store, proof["id"], chain)
        accepted = submit_result(store, proof["id"], chain)
    return {
        "link": "-",
        "K": 1,
        "logrows": str(circuit["logrows"]),
        "deploy gas": deployed["gas_used"],
        "register gas": deployed["register_gas_used"],
        "check gas": check["gas"],
        "submit gas": accepted["gas_used"],
    }


def measure(root: Path, mode: Link, count: int) -> dict[str, Any]:
    """Build, prove and submit one composite; its gas figures."""
    settings = Settings(data_dir=root / "data", measure_top=1)
    store = ArtifactStore(settings.data_dir)
    model = make_mlp3(root / "mlp3.onnx")
    plan = plan_segmented(model, calibration(), OPTIONS, settings, count, link=mode)
    composite = build_segmented(plan, OPTIONS, store, settings)
    proof_id = prove_composite(store, plan_proof(store, composite["id"], [SAMPLE]))["id"]
    logrows = [s["logrows"] for s in composite["segments"]]
    with LocalChain() as node:
        chain = connect(node.rpc_url, ANVIL_DEV_KEY)
        deployed = deploy_composite(store, composite["id"], chain)
        check = verify_composite_onchain(store, proof_id, chain)
        accepted = submit_composite(store, proof_id, chain)
    if not accepted["accepted"]:
        raise SystemExit(f"{mode} K={count} was refused: {accepted['reason']}")
    return {
        "link": mode,
        "K": count,
        "logrows": "/".join(str(r) for r in logrows),
        "deploy gas": deployed["deploy_gas_used"],
        "register gas": deployed["register_gas_used"],
        "check gas": check["gas"],
        "submit gas": accepted["gas_used"],
        "calldata bytes": accepted["calldata_bytes"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(_unsplit(Path(tmp) / "unsplit"))
        for mode in LINKS:
            for count in (2, 3):
                rows.append(measure(Path(tmp) / f"{mode}-{count}", mode, count))
    print(format_table(COLUMNS, [[str(r[c]) for c in COLUMNS] for r in rows], args.markdown))
    if args.json:
        write_json(args.json, rows)


if __name__ == "__main__":
    main()
