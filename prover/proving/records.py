"""What a stored circuit or proof is, decided in one place; every layer that treats them
differently (proving, verifying, the service's views, the chain) branches on these.

A circuit is one circuit, ``segmented`` (a model in segments: a verifier per segment) or
a ``batch`` circuit (N inputs in one proof; its model carries the layout). A proof is one
proof, a ``composite`` of segment proofs, a ``batch`` proof of a batch circuit, or a
``batched`` request (one input proven inside a batch proof it points to).
"""

from __future__ import annotations

from typing import Any, Literal

from prover.circuits.layouts import is_batch_circuit
from prover.store import ArtifactStore

CircuitKind = Literal["circuit", "segmented", "batch"]
ProofKind = Literal["proof", "composite", "batch", "batched"]


def circuit_kind(store: ArtifactStore, circuit: dict[str, Any]) -> CircuitKind:
    """The kind of a circuit record (a batch circuit is known by its model's layout)."""
    if circuit.get("type") == "segmented":
        return "segmented"
    return "batch" if is_batch_circuit(store, circuit) else "circuit"


def proof_kind(store: ArtifactStore, record: dict[str, Any]) -> ProofKind:
    """The kind of a proof record (a batch proof is known by its circuit)."""
    if record.get("type") == "composite":
        return "composite"
    if record.get("type") == "batched":
        return "batched"
    circuit = store.read_record("circuits", record["circuit_id"])
    return "batch" if circuit_kind(store, circuit) == "batch" else "proof"


def proven_by(record: dict[str, Any]) -> str:
    """The id of the stored proof that holds a proof record's ezkl proof: a batched
    request's batch proof, else its own."""
    return record["batch"]["proof_id"] if record.get("type") == "batched" else record["id"]
