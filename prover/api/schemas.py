"""Request and response bodies, as OpenAPI shows them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prover.service.kinds import KINDS
from prover.service.options import CompileRequest


class Open(BaseModel):
    """A body that may carry more fields than listed."""

    model_config = ConfigDict(extra="allow")


class ErrorDetail(Open):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_model.")
    message: str = Field(description="What was wrong and what to do about it.")


class ErrorBody(BaseModel):
    error: ErrorDetail


class CompileAccepted(BaseModel):
    model_id: str
    circuit_id: str
    job_id: str
    state: str = Field(description="compiling, ready or failed")


class ProofAccepted(BaseModel):
    proof_id: str
    job_id: str
    state: str = Field(description="proving, ready or failed")


class JobAccepted(BaseModel):
    job_id: str
    state: str


class JobView(Open):
    job_id: str
    kind: str = Field(description="the job kind", json_schema_extra={"enum": list(KINDS)})
    subject_id: str
    state: str = Field(description="queued, running, succeeded or failed")
    phase: str = Field(description="queued, intake, search, setup, witness, proving, ...")
    progress: float = Field(ge=0, le=1)
    error: dict[str, Any] | None
    result: dict[str, Any] | None
    attempts: int
    timings: dict[str, float] = Field(description="seconds spent in each phase")


OWN_JOB = "this key's job for it (keys sharing a proof or circuit each have their own)"
ASKED_AT = "when this key first asked for it"


class ProofView(Open):
    proof_id: str
    state: str
    job_id: str | None = Field(description=OWN_JOB)
    circuit_id: str
    created_at: str | None = Field(None, description=ASKED_AT)
    proof: str | None = Field(None, description="hex proof bytes (verifier calldata)")
    instances: list[list[str]] | None = Field(None, description="public instances, 0x felts")
    outputs: list[Any] | None = Field(None, description="rescaled outputs, model-shaped")
    timings: dict[str, float] | None = None


class CircuitView(Open):
    circuit_id: str
    state: str
    job_id: str | None = Field(description=OWN_JOB)
    model_id: str
    model_name: str = Field(description="the model's file name as this key uploaded it")
    created_at: str | None = Field(None, description=ASKED_AT)
    record: dict[str, Any] | None = Field(None, description="settings, accuracy, search, ...")
    training: dict[str, Any] | None = Field(
        None, description="step circuits: loss, lr, scale, quantization error vs. the update"
    )


class VerifyResult(Open):
    valid: bool
    reason: str | None


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: int | None = Field(description="pass as ?cursor= for the next page")


class Health(Open):
    status: str = Field(description="ok, or degraded with the failing parts named")
    database: str
    broker: str
    workers: int


class CompileForm(CompileRequest):
    """Compile options, as form fields beside the model file; each is optional. A bad value
    is answered 422 invalid_input, naming the field."""

    # The form's file parts reach the model too: they are not options, so extra fields
    # are ignored here (CompileRequest itself forbids them).
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def parsed(cls, data: Any) -> Any:
        """The options ``CompileRequest.parse`` makes of the form's values (its
        ``InvalidInputError`` is not a ``ValueError``, so it reaches the error handler)."""
        if isinstance(data, Mapping):
            fields = {name: data.get(name) for name in CompileRequest.model_fields}
            return CompileRequest.parse(fields).model_dump()
        return data


class ProofRequest(BaseModel):
    input: Any = Field(
        description="ezkl input.json object ({'input_data': [...]}), an object keyed by "
        "input name, or nested lists"
    )
    fresh: bool = Field(False, description="prove again even if this input was proven")


class DeployRequest(BaseModel):
    force: bool = Field(False, description="deploy again even if the chain has it")


class SubmitRequest(BaseModel):
    commit_reveal: bool = Field(False, description="commit, then reveal in a later block")


class RunRequest(BaseModel):
    circuit_id: str = Field(description="a training-step circuit (POST /v1/training/circuits)")
    weights: list[float] = Field(description="the initial weights, flat (flatten_params order)")
    batches: list[dict[str, Any]] = Field(
        description='one batch per step: {"x": [...], "y": [...]} (for cross-entropy, y may '
        "be class indices)"
    )


class RunSummary(Open):
    run_id: str
    circuit_id: str
    state: str = Field(description="running, succeeded or failed")
    steps_total: int
    steps_done: int
    job_id: str = Field(description="the current (or last) step's job")


class RunView(RunSummary):
    error: dict[str, Any] | None
    # The fields below are left out (null) with ?steps=false.
    scale: int | None = Field(None, description="the fixed-point scale weights are quantized at")
    steps: list[dict[str, Any]] | None = Field(
        None,
        description="each proven step: proof_id, commitments, loss, float_loss, "
        "max_error_vs_float, timings",
    )
    final_weights: list[float] | None = Field(None, description="the proven new weights")
    final_commitment: str | None = None


class ChainRequest(BaseModel):
    proof_ids: list[str] = Field(min_length=1, description="step proofs, in order")
    batches: list[dict[str, Any]] | None = Field(
        None, description="each step's batch {x, y}, to check the batch commitments"
    )
    initial_weights: str | None = Field(None, description="expected first weights commitment")


class ChainResult(Open):
    valid: bool
    broken_at: int | None = Field(description="the first broken step (0-based)")
    reason: str | None
    steps: list[dict[str, Any]]
    final_weights: str | None = Field(description="the last step's weights commitment")
