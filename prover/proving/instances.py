"""A proof's public instances known before the proof: what a market request commits to
(``chain.market.input_commitment``) when nobody has proven the input yet, and the
result a provider checks is not on chain already."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from prover.errors import InvalidInputError
from prover.proving.plans import ProofPlan
from prover.proving.records import circuit_kind
from prover.store import ArtifactStore

# Where a witness holds each part's instances, by the part's visibility (a private part
# has none in the proof).
_WITNESS_ROWS = {"public": "{}s", "hashed": "processed_{}s"}


def check_marketable(store: ArtifactStore, circuit: dict[str, Any]) -> None:
    """``InvalidInputError`` unless a market request can bind an input of ``circuit``:
    it must be one circuit (not a batch or segments) whose input is in its instances
    (public: the values; hashed: their Poseidon hash). A private input has none."""
    kind = circuit_kind(store, circuit)
    if kind != "circuit" or circuit["visibility"]["input"] not in _WITNESS_ROWS:
        raise InvalidInputError(
            f"circuit {circuit['id'][:16]} cannot go to the market: a market request binds "
            "the input by the proof's instances, which needs one circuit (this one is a "
            f"{kind}) with a public or hashed input (this one's is "
            f"{circuit['visibility']['input']})",
            circuit_id=circuit["id"],
        )


def witness_instances(store: ArtifactStore, plan: ProofPlan) -> list[int]:
    """The public instances a proof of ``plan`` (a ``check_marketable`` circuit) will
    have, from the witness alone: its input's (values, or their Poseidon hash), then its
    output's where not private."""
    from prover.circuits.witness import generate_witness, write_input  # ezkl: not in the API

    circuit = plan.circuit
    cdir = store.path("circuits", circuit["id"])
    with tempfile.TemporaryDirectory() as tmp:
        input_path = write_input(Path(tmp) / "input.json", [plan.sample])
        witness = generate_witness(cdir / "model.compiled", input_path, Path(tmp) / "w.json")
    elements = witness["pretty_elements"]
    rows: list[list[str]] = []
    for part in ("input", "output"):
        where = _WITNESS_ROWS.get(circuit["visibility"][part])
        rows += elements[where.format(part)] if where else []
    return [int(value, 16) for row in rows for value in row]
