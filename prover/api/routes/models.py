"""Models: uploading one for compilation, reading and listing them."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile

from prover.api.deps import (
    DispatcherDep,
    Owner,
    SessionDep,
    SettingsDep,
    StoreDep,
    Submitter,
)
from prover.api.responses import BODY, errors
from prover.api.routes.pages import add_list_route
from prover.api.schemas import CompileAccepted, CompileForm, CostEstimate
from prover.api.uploads import json_part, saved_model
from prover.service import compiles, estimates, queries

router = APIRouter()


@router.post(
    "/v1/models",
    status_code=202,
    response_model=CompileAccepted,
    response_model_exclude_none=True,
    responses=errors(*BODY),
)
def submit_model(
    key: Submitter,
    settings: SettingsDep,
    store: StoreDep,
    dispatch: DispatcherDep,
    model: Annotated[UploadFile, File(description="ONNX model file")],
    options: Annotated[CompileForm, Form()],
    calibration: Annotated[
        UploadFile | None, File(description="calibration data (ezkl input.json, ...)")
    ] = None,
) -> dict[str, Any]:
    """Accept a model for compilation into a circuit (202; the job compiles it).

    The model and calibration data are checked before the job exists; the same
    request twice answers with the same circuit and job."""
    with tempfile.TemporaryDirectory() as tmp:
        path = saved_model(model, Path(tmp))
        cal = None if calibration is None else json_part(calibration, "calibration")
        return dispatch(compiles.submit_compile(settings, store, key, path, cal, options))


@router.post("/v1/estimates", response_model=CostEstimate, responses=errors(*BODY))
def estimate_model(
    key: Submitter,
    settings: SettingsDep,
    store: StoreDep,
    model: Annotated[UploadFile, File(description="ONNX model file")],
    options: Annotated[CompileForm, Form()],
    calibration: Annotated[
        UploadFile | None, File(description="calibration data (ezkl input.json, ...)")
    ] = None,
) -> dict[str, Any]:
    """Predict what compiling this model (the compile form of ``POST /v1/models``) would
    cost, before any setup: rows, logrows, proving-key bytes, peak memory and prove time
    of the circuit the compile would choose, and whether its proofs fit a worker. Runs
    ezkl's calibration (seconds to a minute); nothing is stored."""
    with tempfile.TemporaryDirectory() as tmp:
        path = saved_model(model, Path(tmp))
        cal = None if calibration is None else json_part(calibration, "calibration")
        return estimates.estimate_compile(store, settings, path, cal, options)


@router.get("/v1/models/{model_id}", responses=errors())
def get_model(model_id: str, key: Owner, session: SessionDep, store: StoreDep) -> dict[str, Any]:
    """A model's record: inputs, outputs, operators, parameter count."""
    return queries.get_model(session, store, key, model_id)


add_list_route(router, "/v1/models", "model", "models")
