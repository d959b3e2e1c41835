"""Deploying and submitting by what a circuit or proof is: one circuit has one verifier and
its results go to ProvenResults; a batch circuit's N results go there in one transaction
(its batch size set once); a circuit in segments has a verifier per segment, and its
results go to ProvenComposites, which checks every segment proof and link at once."""

from __future__ import annotations

from typing import Any

from prover.chain.batches import deploy_batch_circuit, submit_batch, submit_request
from prover.chain.client import Chain
from prover.chain.composites import deploy_composite, submit_composite
from prover.chain.onchain import deploy_circuit, submit_result
from prover.errors import InvalidInputError
from prover.proving.records import circuit_kind, proof_kind
from prover.store import ArtifactStore


def deploy_any(
    store: ArtifactStore, circuit_ref: str, chain: Chain, force: bool = False
) -> dict[str, Any]:
    """``deploy_circuit``; ``deploy_composite`` for a circuit in segments,
    ``deploy_batch_circuit`` for a batch circuit."""
    deploy = {
        "segmented": deploy_composite,
        "batch": deploy_batch_circuit,
        "circuit": deploy_circuit,
    }[circuit_kind(store, store.read_record("circuits", circuit_ref))]
    return deploy(store, circuit_ref, chain, force)


def check_commit_reveal(store: ArtifactStore, proof_ref: str) -> None:
    """``InvalidInputError`` for a proof that cannot be submitted with commit-reveal: one
    in segments (ProvenComposites has no commitments)."""
    if proof_kind(store, store.read_record("proofs", proof_ref)) == "composite":
        raise InvalidInputError(
            f"proof {proof_ref} is in segments: it is accepted in one transaction by "
            "ProvenComposites, without commit-reveal"
        )


def submit_any(
    store: ArtifactStore, proof_ref: str, chain: Chain, commit_reveal: bool = False
) -> dict[str, Any]:
    """``submit_result``; ``submit_batch`` for a batch proof (``submit_request`` for one
    request proven in a batch: its whole batch); ``submit_composite`` for a proof in
    segments (without commit-reveal: ``check_commit_reveal``)."""
    kind = proof_kind(store, store.read_record("proofs", proof_ref))
    if kind == "composite":
        if commit_reveal:
            check_commit_reveal(store, proof_ref)
        return submit_composite(store, proof_ref, chain)
    submit = {"batched": submit_request, "batch": submit_batch, "proof": submit_result}[kind]
    return submit(store, proof_ref, chain, commit_reveal)
