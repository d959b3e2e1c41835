"""Measure verify gas on anvil and fit the verify-gas model in ``prover/circuits/gas.py``.

For a grid of small MLPs (torch → ONNX) x inner columns x input/output visibility x own or
reusable verifier, it compiles each circuit with the project's compile (the search pinned
to one candidate, so the grid point is the circuit), proves one input, deploys and
registers the verifier on one local anvil chain (``deploy_circuit``; the reusable verifier
is deployed once and shared, as on a real chain) and asks the registered verifier for its
answer (``verify_onchain``: the gas of one verification, calldata included). It then fits
the own verifier's gas, the reusable verifier's gas (with the circuit's VKA) and the own
verifier's code size as non-negative combinations of ``gas.terms`` (least squares on
relative error), writes the coefficients to ``prover/circuits/gas_model.json``, and
prints a table of measured against predicted (also ``bench/results/gas_fit.md`` and
``gas_fit.json``; the raw rows in ``gas_measurements.json``).

Run from the repository root (needs scripts/setup.sh's anvil and solc): about 35
minutes on 2 shared cores (the MLPs 13, the attention head 22; ``--models`` measures
some models again and keeps the others' rows)::

    .venv/bin/python bench/fit_gas_model.py [--models relu4 ...] [--refit]

``--refit`` fits again from bench/results/gas_measurements.json without measuring (run
it first after changing ``gas.terms``: compiles predict gas with the stored coefficients).
Gas does not depend on the machine or its load: the numbers are exact for a circuit.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import onnx  # noqa: F401  (before torch: its exporter needs onnx importable first)
from common import (
    RESULTS,
    environment,
    fit_nonnegative,
    format_table,
    quiet_ezkl,
    stated_error,
    write_json,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prover.circuits import gas  # noqa: E402

MEASUREMENTS = RESULTS / "gas_measurements.json"


def mlp(widths: tuple[int, ...], *acts: str) -> Callable[[Path], Path]:
    """A builder of an MLP of these layer widths with ``acts`` between its layers, in
    turn (relu: range checks only; sigmoid, tanh: a lookup table each)."""

    def build(path: Path) -> Path:
        import torch

        from prover.circuits.export import export_onnx

        ACTIVATIONS = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh}
        torch.manual_seed(0)
        layers: list[torch.nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            if i:
                layers.append(ACTIVATIONS[acts[(i - 1) % len(acts)]]())
            layers.append(torch.nn.Linear(a, b))
        return export_onnx(torch.nn.Sequential(*layers), torch.zeros(1, widths[0]), path)

    return build


def attention(path: Path) -> Path:
    """One softmax attention head over 4 tokens of width 4, then a dense layer: ezkl
    builds its softmax and matmuls with shuffles, an exp lookup and three range checks."""
    import torch

    from prover.circuits.export import export_onnx

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q, self.k, self.v = (torch.nn.Linear(4, 4) for _ in range(3))
            self.out = torch.nn.Linear(16, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            scores = torch.softmax(self.q(x) @ self.k(x).transpose(1, 2) / 2.0, dim=-1)
            return self.out((scores @ self.v(x)).flatten(1))

    torch.manual_seed(0)
    return export_onnx(Head(), torch.zeros(1, 4, 4), path)


MODELS: dict[str, Callable[[Path], Path]] = {
    "relu4": mlp((4, 8, 2), "relu"),
    "sigmoid4": mlp((4, 8, 2), "sigmoid"),
    "relu16": mlp((16, 16, 8), "relu"),
    "mixed8": mlp((8, 8, 8, 4), "sigmoid", "tanh"),
    "attn4": attention,
}
COLS = (1, 2, 3, 4)
# (input, output) visibility; parameters stay fixed.
VISIBILITIES = (
    ("public", "public"),
    ("hashed", "public"),
    ("public", "hashed"),
    ("hashed", "hashed"),
)
# The reusable verifier on a subset: its gas is the own verifier's shape plus the VKA.
REUSABLE_VISIBILITIES = (("public", "public"), ("hashed", "public"))


def grid(models: list[str]) -> list[tuple[str, int, tuple[str, str], bool]]:
    points = []
    for name, cols in itertools.product(models, COLS):
        points += [(name, cols, vis, False) for vis in VISIBILITIES]
        points += [(name, cols, vis, True) for vis in REUSABLE_VISIBILITIES]
    return points


def measure(models: list[str]) -> list[dict[str, Any]]:
    """Every grid point on one anvil chain and one data dir (SRS and models shared)."""
    from prover.chain.client import connect
    from prover.chain.node import ANVIL_DEV_KEY, LocalChain
    from prover.config import Settings
    from prover.store import ArtifactStore

    rows = []
    with tempfile.TemporaryDirectory(prefix="fit-gas-") as tmp, LocalChain() as node:
        work = Path(tmp)
        settings = Settings(data_dir=work / "data")
        store = ArtifactStore(settings.data_dir)
        chain = connect(node.rpc_url, ANVIL_DEV_KEY)
        paths = {name: MODELS[name](work / f"{name}.onnx") for name in models}
        for name, cols, vis, reusable in grid(models):
            point = {"model": name, "cols": cols, "input": vis[0], "output": vis[1]}
            point["reusable"] = reusable
            print(f"[gas] {json.dumps(point)}", flush=True)
            started = time.perf_counter()
            try:
                row = {**point, **measure_point(paths[name], point, store, settings, chain)}
            except Exception as exc:  # one point ezkl refuses must not stop the grid
                row = {**point, "error": str(exc)[-400:]}
            row["seconds"] = round(time.perf_counter() - started, 1)
            print(f"[gas] {json.dumps({k: v for k, v in row.items() if k != 'settings'})}")
            rows.append(row)
    return rows


def measure_point(
    model: Path, point: dict[str, Any], store: Any, settings: Any, chain: Any
) -> dict[str, Any]:
    """Compile (one pinned candidate), prove, deploy and verify one grid point."""
    import numpy as np

    from prover.chain.evm_verifier import verifier_artifact
    from prover.chain.onchain import deploy_circuit, verify_onchain
    from prover.circuits.compiler import CompileOptions, compile_model
    from prover.circuits.search import SearchSpace, Visibility
    from prover.errors import CircuitError
    from prover.proving.proofs import prove_input

    options = CompileOptions(
        visibility=Visibility(input=point["input"], output=point["output"]),
        space=SearchSpace(scales=(10,), legs=(3,), inner_cols=(point["cols"],)),
        reusable_verifier=point["reusable"],
        tolerance=0.5,
        measure_top=1,
    )
    circuit = compile_model(model, None, options, store, settings)
    width = int(np.prod(circuit["inputs"][0]["shape"]))  # the input's elements
    sample = {"input_data": [np.linspace(-1, 1, width).round(3).tolist()]}
    proof = prove_input(store, circuit["id"], sample)
    circuit_dir = store.path("circuits", circuit["id"])
    measured = {"settings": json.loads((circuit_dir / "settings.json").read_text())}
    try:
        artifact = verifier_artifact(store, circuit["id"])
    except CircuitError as exc:  # over EIP-170: its size is measured, its gas cannot be
        found = re.search(r"the verifier is (\d+) bytes of code", exc.message)
        if found is None:
            raise
        return {**measured, "runtime_size": int(found[1]), "error": "own verifier over EIP-170"}
    deployment = deploy_circuit(store, circuit["id"], chain)
    answer = verify_onchain(store, proof["id"], chain)
    if not answer["valid"]:
        raise RuntimeError(f"the verifier refused the proof: {answer['reason']}")
    return {
        **measured,
        "gas": answer["gas"],
        "calldata_bytes": answer["calldata_bytes"],
        "runtime_size": artifact["runtime_size"],
        "vka_words": len(artifact.get("vka", [])),
        "deploy_gas": deployment["gas_used"],
    }


def quantity_rows(rows: list[dict[str, Any]], quantity: str) -> list[dict[str, Any]]:
    """The measured rows a quantity is fitted on, each with its measured value as ``y``."""
    if quantity == "own_bytes":
        return [
            {**r, "y": r["runtime_size"]} for r in rows if "runtime_size" in r and not r["reusable"]
        ]
    good = [r for r in rows if not r.get("error")]
    return [{**r, "y": r["gas"]} for r in good if r["reusable"] == (quantity == "reusable")]


def fit(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Non-negative coefficients per quantity, minimising the relative squared error."""
    coefficients = {}
    for quantity in gas.QUANTITIES:
        used = quantity_rows(rows, quantity)
        a = [gas.terms(r["settings"]) for r in used]
        coefficients[quantity] = fit_nonnegative(a, [r["y"] for r in used])
    return coefficients


def errors(
    rows: list[dict[str, Any]], coefficients: dict[str, list[float]]
) -> list[dict[str, Any]]:
    """Measured against predicted, one entry per (row, quantity)."""
    out = []
    for quantity in gas.QUANTITIES:
        for r in quantity_rows(rows, quantity):
            predicted = gas.predict_quantity(r["settings"], quantity, coefficients[quantity])
            out.append(
                {
                    "model": r["model"],
                    "cols": r["cols"],
                    "input": r["input"],
                    "output": r["output"],
                    "logrows": r["settings"]["run_args"]["logrows"],
                    "quantity": quantity,
                    "measured": r["y"],
                    "predicted": round(predicted),
                    "error": (predicted - r["y"]) / r["y"],
                }
            )
    return out


def table(compared: list[dict[str, Any]], markdown: bool) -> str:
    headers = [
        "model",
        "cols",
        "in",
        "out",
        "logrows",
        "quantity",
        "measured",
        "predicted",
        "err %",
    ]
    cells = [
        [
            c["model"],
            str(c["cols"]),
            c["input"],
            c["output"],
            str(c["logrows"]),
            c["quantity"],
            str(c["measured"]),
            str(c["predicted"]),
            f"{100 * c['error']:+.2f}",
        ]
        for c in compared
    ]
    return format_table(headers, cells, markdown)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--refit", action="store_true", help="fit the stored measurements")
    args = parser.parse_args(argv)
    quiet_ezkl()
    kept = json.loads(MEASUREMENTS.read_text())["rows"] if MEASUREMENTS.exists() else []
    if args.refit:
        rows = kept
    else:
        load = os.getloadavg()
        # Models measured now replace their earlier rows; the other models' rows are kept.
        rows = [r for r in kept if r["model"] not in args.models] + measure(args.models)
        write_json(MEASUREMENTS, {"environment": environment(load), "rows": rows})
    fitted, compared = write_fit(rows)
    print(table(compared, False))
    print(json.dumps({k: fitted[k] for k in ("fit_error", "measured_on")}, indent=2))
    for row in rows:
        if row.get("error"):
            where = f"{row['model']} c{row['cols']} {row['input']}/{row['output']}"
            print(f"NO GAS {where}: {row['error']}")


def write_fit(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Fit, write the model's JSON and the results; returns (the model, measured vs
    predicted)."""
    coefficients = fit(rows)
    compared = errors(rows, coefficients)
    models = ", ".join(sorted({r["model"] for r in rows}))
    fitted = {
        "coefficients": coefficients,
        "fit_error": {
            q: stated_error(c["error"] for c in compared if c["quantity"] == q)
            for q in gas.QUANTITIES
        },
        "terms": list(gas.TERMS),
        "measured_on": f"{len(rows)} circuits ({sum(not r.get('error') for r in rows)} with "
        f"gas) of the MLPs {models}; ezkl {version('ezkl')}",
    }
    write_json(gas.MODEL_PATH, fitted)
    write_json(RESULTS / "gas_fit.json", {**fitted, "compared": compared})
    (RESULTS / "gas_fit.md").write_text(table(compared, True) + "\n")
    return fitted, compared


if __name__ == "__main__":
    main()
