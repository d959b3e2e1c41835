"""The chain: deploying a circuit's verifier, submitting a proven result (chain jobs)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from prover.api.deps import JSON_ONLY, DispatcherDep, SettingsDep, StoreDep, Submitter
from prover.api.responses import JSON_BODY, errors
from prover.api.schemas import DeployRequest, JobAccepted, SubmitRequest
from prover.service import chain_jobs

router = APIRouter()


@router.post(
    "/v1/circuits/{circuit_id}/deployments",
    status_code=202,
    response_model=JobAccepted,
    responses=errors(409, *JSON_BODY),
    dependencies=JSON_ONLY,
)
def deploy(
    circuit_id: str,
    key: Submitter,
    settings: SettingsDep,
    store: StoreDep,
    dispatch: DispatcherDep,
    body: DeployRequest | None = None,
) -> dict[str, Any]:
    """Deploy the circuit's verifier contract and register it, on the service's chain
    (a job on the chain queue; its result has the addresses). For a circuit in segments:
    each segment's verifier, registered with its links on ProvenComposites."""
    params = {"force": bool(body and body.force)}
    return dispatch(chain_jobs.submit_chain_job(settings, store, key, "deploy", circuit_id, params))


@router.post(
    "/v1/proofs/{proof_id}/submissions",
    status_code=202,
    response_model=JobAccepted,
    responses=errors(409, *JSON_BODY),
    dependencies=JSON_ONLY,
)
def submit_onchain(
    proof_id: str,
    key: Submitter,
    settings: SettingsDep,
    store: StoreDep,
    dispatch: DispatcherDep,
    body: SubmitRequest | None = None,
) -> dict[str, Any]:
    """Submit the proven result to the chain's ProvenResults contract, or a proof in
    segments to ProvenComposites (every segment proof and link checked in one
    transaction), as a chain job; deploy the circuit first."""
    params = {"commit_reveal": bool(body and body.commit_reveal)}
    accepted = chain_jobs.submit_chain_job(settings, store, key, "submit", proof_id, params)
    return dispatch(accepted)
