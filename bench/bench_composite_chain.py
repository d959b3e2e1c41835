"""Gas report: a segmented model's result accepted on chain in one transaction.

The 4-8-6-2 ReLU MLP of tests/integration/test_composite_chain.py, cut after its first
ReLU (K = 2) or after both (K = 3), each segment compiled at one pinned scale with
``hashed`` or ``polycommit`` links; K = 1 is the unsplit model through ProvenResults, for
comparison. For each, in a fresh temporary data dir and a fresh anvil chain: deploy and
register (``deploy_composite``), the view check's gas (``verify_composite_onchain``) and
the submission's gas (``submit_composite``).

Run from the repository root (needs scripts/setup.sh's npm packages)::

    .venv/bin/python bench/bench_composite_chain.py [--json out.json] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import format_table

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "integration")]

from test_composite_chain import (  # noqa: E402 - the tests' segment fixtures
    CUTS,
    SAMPLE,
    SPACES,
    build_composite,
    make_mlp3,
    prove_segments,
    store_composite_proof,
)

from helpers.models import calibration_data  # noqa: E402
from prover.chain.client import connect  # noqa: E402
from prover.chain.composites import (  # noqa: E402
    deploy_composite,
    submit_composite,
    verify_composite_onchain,
)
from prover.chain.node import ANVIL_DEV_KEY, LocalChain  # noqa: E402
from prover.chain.onchain import deploy_circuit, submit_result, verify_onchain  # noqa: E402
from prover.circuits.compiler import CompileOptions, compile_model  # noqa: E402
from prover.config import Settings  # noqa: E402
from prover.proving.proofs import prove_input  # noqa: E402
from prover.store import ArtifactStore  # noqa: E402

COLUMNS = ("link", "K", "logrows", "deploy gas", "register gas", "check gas", "submit gas")


def _unsplit(root: Path) -> dict[str, Any]:
    settings = Settings(data_dir=root / "data")
    store = ArtifactStore(settings.data_dir)
    options = CompileOptions(space=SPACES["hashed"], measure_top=1)
    model = make_mlp3(root / "mlp3.onnx")
    circuit = compile_model(model, calibration_data(), options, store, settings)
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


def measure(root: Path, mode: str, count: int) -> dict[str, Any]:
    """Build, prove and submit one composite; its gas figures."""
    settings = Settings(data_dir=root / "data")
    store = ArtifactStore(settings.data_dir)
    model = make_mlp3(root / "mlp3.onnx")
    composite = build_composite(store, settings, model, CUTS[: count - 1], mode)
    proofs = prove_segments(store, composite, SAMPLE)
    proof_id = store_composite_proof(store, composite, proofs)
    logrows = [store.read_record("circuits", p["circuit_id"])["logrows"] for p in proofs]
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
        for mode in ("hashed", "polycommit"):
            for count in (2, 3):
                rows.append(measure(Path(tmp) / f"{mode}-{count}", mode, count))
    print(format_table(COLUMNS, [[str(r[c]) for c in COLUMNS] for r in rows], args.markdown))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
