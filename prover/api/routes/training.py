"""Proven training: step circuits, runs, their ledger entries and chain verification."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile

from prover.api.deps import (
    JSON_ONLY,
    DispatcherDep,
    Owner,
    SessionDep,
    SettingsDep,
    StoreDep,
    Submitter,
)
from prover.api.responses import BODY, JSON_BODY, errors
from prover.api.routes.pages import add_list_route
from prover.api.schemas import (
    ChainRequest,
    ChainResult,
    CompileAccepted,
    FederatedRunRequest,
    JobAccepted,
    RunRequest,
    RunSummary,
    RunView,
)
from prover.api.uploads import json_part, saved_model
from prover.service import federated, training

router = APIRouter(tags=["training"])


@router.post(
    "/v1/training/circuits",
    status_code=202,
    response_model=CompileAccepted,
    responses=errors(*BODY),
)
def submit_step_circuit(
    key: Submitter,
    settings: SettingsDep,
    store: StoreDep,
    dispatch: DispatcherDep,
    model: Annotated[
        UploadFile, File(description="an exported SGD step graph (`prover train export`)")
    ],
    sample: Annotated[UploadFile, File(description='a sample step, JSON {"weights", "x", "y"}')],
    reusable_verifier: Annotated[bool, Form()] = True,
) -> dict[str, Any]:
    """Accept a training-step graph for compilation into a step circuit (202; a compile
    job). The scale is chosen against the sample step's weight update."""
    with tempfile.TemporaryDirectory() as tmp:
        path, data = saved_model(model, Path(tmp)), json_part(sample, "sample")
        return dispatch(
            training.submit_step_circuit(
                settings, store, key, path, data, reusable_verifier=reusable_verifier
            )
        )


@router.post(
    "/v1/training/runs",
    status_code=202,
    response_model=RunSummary,
    responses=errors(409, *JSON_BODY),
    dependencies=JSON_ONLY,
)
def submit_run(
    body: RunRequest,
    key: Submitter,
    settings: SettingsDep,
    store: StoreDep,
    dispatch: DispatcherDep,
) -> dict[str, Any]:
    """Start a training run: one proven step per batch, each from the weights the
    previous step produced (202; one job per step, in order). The same run twice is
    one run; a failed run submitted again resumes after its last proven step."""
    return dispatch(
        training.submit_run(settings, store, key, body.circuit_id, body.weights, body.batches)
    )


@router.post(
    "/v1/training/federated-runs",
    status_code=202,
    response_model=RunSummary,
    responses=errors(409, *JSON_BODY),
    dependencies=JSON_ONLY,
)
def submit_federated_run(
    body: FederatedRunRequest,
    key: Submitter,
    settings: SettingsDep,
    store: StoreDep,
    dispatch: DispatcherDep,
) -> dict[str, Any]:
    """Start a federated run: in each round every client proves one step from the same
    global weights (one job per client, proven at once by as many workers), then one
    aggregation proof averages them into the next round's weights (202). Read it, and
    put it on the ledger, as a training run."""
    return dispatch(
        federated.submit_federated_run(
            settings,
            store,
            key,
            body.circuit_id,
            body.weights,
            body.rounds,
            client_weights=body.client_weights,
        )
    )


@router.get("/v1/training/runs/{run_id}", response_model=RunView, responses=errors())
def get_run(
    run_id: str,
    key: Owner,
    session: SessionDep,
    store: StoreDep,
    steps: Annotated[bool, Query(description="false: only the state (cheap, for polling)")] = True,
) -> dict[str, Any]:
    """A run's state and its proven steps (proof ids, commitments, losses, error
    against float training); the final weights once it succeeded."""
    return training.get_run(session, store, key, run_id, steps)


@router.post(
    "/v1/training/runs/{run_id}/ledger",
    status_code=202,
    response_model=JobAccepted,
    responses=errors(409, 413),
)
def put_run_on_ledger(
    run_id: str, key: Submitter, settings: SettingsDep, dispatch: DispatcherDep
) -> dict[str, Any]:
    """Put a succeeded run on the service chain's TrainingLedger (a job on the chain
    queue): start it under its id with its initial weights and its batch schedule
    pinned, then submit every step proof the ledger has not accepted yet. Safe to
    repeat; the job's result is the run as the ledger holds it."""
    return dispatch(training.submit_ledger(settings, key, run_id))


@router.post(
    "/v1/training/verify-chain",
    response_model=ChainResult,
    responses=errors(*JSON_BODY),
    dependencies=JSON_ONLY,
)
def verify_chain(
    body: ChainRequest, key: Owner, session: SessionDep, store: StoreDep
) -> dict[str, Any]:
    """Check step proofs and that each starts from the weights the previous one
    produced (and, if given, from the initial weights, on the given batches)."""
    return training.verify_steps(
        session, store, key, body.proof_ids, body.batches, body.initial_weights
    )


add_list_route(router, "/v1/training/runs", "run", "training runs")
