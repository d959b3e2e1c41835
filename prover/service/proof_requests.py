"""Accepting a proof request: the input checked against its circuit (shapes, and the
values the circuit can read), the proof's memory against a worker's; the same (circuit,
input) twice is one proof unless the client asks for a fresh one."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from prover.config import Settings
from prover.errors import InvalidInputError
from prover.service import grants
from prover.service.accepting import Accepted, Making, ready_circuit, row_with_job, with_retry
from prover.service.capacity import check_capacity
from prover.service.db import session_scope
from prover.service.tables import Proof
from prover.store import ArtifactStore


def request_proof(
    settings: Settings,
    store: ArtifactStore,
    owner: str,
    circuit_id: str,
    input_obj: Any,
    *,
    fresh: bool = False,
    capacity_bytes: int | None = None,
    items: list[Any] | None = None,
) -> Accepted:
    """Accept a proof request for a compiled circuit; returns the response and the jobs.
    With ``capacity_bytes``, a proof that needs more memory than that is refused. A batch
    circuit takes its N inputs as ``items`` (each as a single input is given)."""
    db_url = settings.sqlalchemy_url()
    with session_scope(db_url) as session:
        ready_circuit(session, owner, circuit_id)
    from prover.circuits.data import sample_digest_material
    from prover.circuits.layouts import batch_input, is_batch_circuit, stored_layout
    from prover.proving.plans import plan_proof

    circuit = store.read_record("circuits", circuit_id)
    if items is not None:
        input_obj = batch_input(stored_layout(store, circuit), items)
    elif is_batch_circuit(store, circuit):
        n = stored_layout(store, circuit).n
        raise InvalidInputError(
            f"circuit {circuit_id} proves a batch of {n}: send items ({n} inputs), or one "
            "input with batching: true to be proven with this key's other requests",
            circuit_id=circuit_id,
        )
    plan = plan_proof(store, circuit_id, input_obj, fresh)
    if capacity_bytes is not None:
        check_capacity(store, plan.circuit, capacity_bytes)
    params = {
        "circuit_id": circuit_id,
        "input": sample_digest_material(plan.sample),
        "input_digest": plan.input_digest,
    }

    def make_proof(job_id: str) -> Proof:
        return Proof(
            id=plan.proof_id,
            circuit_id=circuit_id,
            input_digest=plan.input_digest,
            state="proving",
            job_id=job_id,
        )

    def ready_result() -> dict[str, Any]:
        record = store.read_record("proofs", plan.proof_id)
        keep = ("outputs", "timings")
        return {"proof_id": plan.proof_id, **{k: record[k] for k in keep}, "cached": True}

    making = Making("prove", plan.proof_id, params, "proving", make_proof, ready_result)

    def body(session: Session) -> Accepted:
        row = session.get(Proof, plan.proof_id)
        proof, job, enqueue = row_with_job(session, owner, making, row)
        grants.grant(session, owner, "proof", proof.id)
        response = {"proof_id": proof.id, "job_id": job.id, "state": proof.state}
        return response, enqueue

    return with_retry(db_url, body)
