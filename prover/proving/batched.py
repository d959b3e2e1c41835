"""Requests proven together: several single inputs in one proof of a batch circuit, each
request keeping a record of its own.

A batch circuit (``circuits.batch``) takes exactly N inputs. ``prove_requests`` lays the
requests' inputs out as one batch (the last one repeated to fill N: a repeated item adds
no result a verifier could mistake for another request's), proves it once, and publishes
one ``batched`` record per request: its own outputs and position, pointing at the batch
proof. The batch proof is an ordinary proof record, so it verifies and exports alone;
``proofs.verify`` checks a request's by it, and that the request's outputs are the
batch's at its position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from prover.circuits.layouts import BatchLayout, batch_input, split_outputs, stored_layout
from prover.circuits.search import Progress
from prover.errors import InvalidInputError
from prover.proving.plans import plan_proof
from prover.proving.proofs import build_proof
from prover.store import ArtifactStore, now_iso

# What a request's record repeats of its batch proof (what verifies it on chain).
_SHARED = ("circuit_id", "model_id", "outputs_public", "instances", "proof", "proof_bytes")


@dataclass(frozen=True)
class Request:
    """One request in a batch: the proof id it was given, its input and the input's digest."""

    proof_id: str
    input: Any
    input_digest: str


def prove_requests(
    store: ArtifactStore,
    circuit_ref: str,
    requests: list[Request],
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Prove up to N requests in one batch proof; returns the batch proof's record with
    ``requests``: each request's own record (published under its proof id)."""
    circuit = store.read_record("circuits", circuit_ref)
    layout = stored_layout(store, circuit)
    if not 1 <= len(requests) <= layout.n:
        raise InvalidInputError(
            f"a batch of {layout.n} takes 1 to {layout.n} requests; got {len(requests)}"
        )
    items = [r.input for r in requests]
    items += [items[-1]] * (layout.n - len(items))
    plan = plan_proof(store, circuit["id"], batch_input(layout, items))
    batch = build_proof(store, plan, progress)
    outputs = split_outputs(layout, batch["outputs"])
    made = [
        _publish(store, batch, layout, request, i, outputs[i], len(requests))
        for i, request in enumerate(requests)
    ]
    return {**batch, "requests": made}


def _publish(
    store: ArtifactStore,
    batch: dict[str, Any],
    layout: BatchLayout,
    request: Request,
    position: int,
    outputs: list[np.ndarray],
    count: int,
) -> dict[str, Any]:
    """A request's record (made once: the same request proven again keeps its first)."""
    if store.exists("proofs", request.proof_id):
        return store.read_record("proofs", request.proof_id)
    record = {
        "id": request.proof_id,
        "type": "batched",
        **{name: batch[name] for name in _SHARED},
        "created_at": now_iso(),
        "input_digest": request.input_digest,
        "outputs": [o.tolist() for o in outputs],
        "dev_srs": batch["dev_srs"],
        "timings": batch["timings"],
        "batch": {
            "proof_id": batch["id"],
            "position": position,
            "size": layout.n,
            "requests": count,
        },
    }
    store.save_record("proofs", request.proof_id, record)
    return record
