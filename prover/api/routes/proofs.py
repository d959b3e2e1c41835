"""Proofs: requesting a proven inference on a circuit, reading, verifying and listing."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from prover.api.deps import (
    JSON_ONLY,
    DispatcherDep,
    IntegerLiteral,
    Owner,
    SessionDep,
    SettingsDep,
    StoreDep,
    Submitter,
)
from prover.api.responses import JSON_BODY, errors
from prover.api.routes.pages import add_list_route
from prover.api.schemas import ProofAccepted, ProofRequest, ProofView, VerifyResult
from prover.service import batching, market, proof_requests, queries
from prover.service.capacity import pool_capacity

router = APIRouter()


@router.post(
    "/v1/circuits/{circuit_id}/proofs",
    status_code=202,
    response_model=ProofAccepted,
    responses=errors(409, 413, *JSON_BODY),
    dependencies=JSON_ONLY,
)
def request_proof(
    circuit_id: str,
    body: ProofRequest,
    key: Submitter,
    settings: SettingsDep,
    store: StoreDep,
    dispatch: DispatcherDep,
) -> dict[str, Any]:
    """Request a proven inference (202; the job proves it). The input is checked
    against the circuit's input shapes first; the same input twice is one proof. A
    proof that needs more memory than a worker has is refused (413). With `batching`,
    the input waits (at most the batch window) to be proven with this key's other
    requests of the batch circuit. With `market`, the proof is bought on the proof
    market: the job's phases follow the request."""
    if body.market is not None:
        accepted = market.request_market(
            settings, store, key, circuit_id, body.input, body.market.terms()
        )
        return dispatch(accepted)
    capacity = pool_capacity(settings)
    if body.batching:
        accepted = batching.request_batched(
            settings,
            store,
            key,
            circuit_id,
            body.input,
            fresh=body.fresh,
            capacity_bytes=capacity,
            settle=body.settle,
        )
    else:
        accepted = proof_requests.request_proof(
            settings,
            store,
            key,
            circuit_id,
            body.input,
            fresh=body.fresh,
            capacity_bytes=capacity,
            items=body.items,
        )
    return dispatch(accepted)


@router.get("/v1/proofs/{proof_id}", response_model=ProofView, responses=errors())
def get_proof(proof_id: str, key: Owner, session: SessionDep, store: StoreDep) -> dict[str, Any]:
    """A proof's state; once ready the proof, public instances, outputs and timings."""
    return queries.get_proof(session, store, key, proof_id)


@router.get("/v1/proofs/{proof_id}/ezkl", responses=errors(409))
def get_proof_file(
    proof_id: str,
    key: Owner,
    session: SessionDep,
    store: StoreDep,
    segment: Annotated[
        int | None,
        Query(ge=0, description="of a proof in segments: which segment's proof"),
        IntegerLiteral,
    ] = None,
) -> FileResponse:
    """The proof in ezkl's own JSON format (`ezkl verify` accepts it); of a proof in
    segments, one segment's proof (each checks against that segment's circuit)."""
    path = queries.ready_proof_file(session, store, key, proof_id, segment)
    name = "proof.json" if segment is None else f"proof-segment-{segment}.json"
    return FileResponse(path, filename=name)


@router.post(
    "/v1/proofs/{proof_id}/verify", response_model=VerifyResult, responses=errors(409, 413)
)
def verify(proof_id: str, key: Owner, session: SessionDep, store: StoreDep) -> dict[str, Any]:
    """Verify a ready proof with ezkl against its circuit's verifying key."""
    return queries.verify_proof(session, store, key, proof_id)


add_list_route(router, "/v1/proofs", "proof", "proofs")
