"""A proof request checked against its circuit, before any proving: what both a single
proof (``proofs``) and a proof in segments (``composite``) start from."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from prover.circuits.data import Sample, parse_sample, sample_digest_material
from prover.circuits.ranges import check_input
from prover.circuits.tensors import TensorSpec
from prover.proving.records import circuit_kind
from prover.store import ArtifactStore, canonical_digest


def tensor_specs(items: list[dict]) -> list[TensorSpec]:
    """The tensor specs a circuit record lists (its ``inputs`` or ``outputs``)."""
    return [TensorSpec.from_dict(t) for t in items]


def _entry_run_args(store: ArtifactStore, circuit: dict[str, Any]) -> dict[str, Any]:
    """The run_args of the circuit that reads the model's inputs: a segmented circuit's
    first segment."""
    if circuit_kind(store, circuit) == "segmented":
        circuit = store.read_record("circuits", circuit["segments"][0]["circuit_id"])
    return dict(circuit["settings"])


@dataclass(frozen=True)
class ProofPlan:
    """A checked proof request: the circuit record, the parsed input and the proof id."""

    circuit: dict[str, Any]
    sample: Sample
    input_digest: str
    proof_id: str


def plan_proof(
    store: ArtifactStore, circuit_ref: str, input_obj: Any, fresh: bool = False
) -> ProofPlan:
    """Check an input against a stored circuit (its shape, and the values the circuit can
    read) and derive the proof id (no proving)."""
    circuit = store.read_record("circuits", circuit_ref)
    specs = tensor_specs(circuit["inputs"])
    sample = parse_sample(input_obj, specs)
    check_input(sample, specs, _entry_run_args(store, circuit))
    input_digest = canonical_digest(sample_digest_material(sample))
    identity = {"circuit": circuit["id"], "input": input_digest}
    if fresh:
        identity["nonce"] = uuid.uuid4().hex
    return ProofPlan(circuit, sample, input_digest, canonical_digest(identity))
