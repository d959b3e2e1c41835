"""Request and response bodies, as OpenAPI shows them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prover.service.kinds import KINDS
from prover.service.options import CompileRequest
from prover.service.scopes import DEFAULT_SCOPE, Scope
from prover.service.webhooks import EVENT_TYPES


class Open(BaseModel):
    """A body that may carry more fields than listed."""

    model_config = ConfigDict(extra="allow")


class JsonBody(BaseModel):
    """A JSON request body, read strictly: Python's ``json`` and pydantic's lax mode would
    take ``0`` for false, ``true`` for 1.0 and NaN or infinity for numbers."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False)


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
    note: str | None = Field(
        None, description="what the request should know of its circuit (a split that saves nothing)"
    )


class CostEstimate(Open):
    """A compile request's predicted cost (no setup): the cost model's prediction for the
    circuit the compile would choose, and whether its proofs fit a worker."""

    model_id: str
    circuit_id: str = Field(description="the circuit a compile of this request makes")
    chosen: str = Field(description="the candidate the compile would keep")
    basis: str = Field(
        description="ezkl-default, search (its trials, compiled without setup), cost-model "
        "(large circuits: candidates ranked by predicted prove time) or compiled (cached)"
    )
    rows: int | None = None
    logrows: int
    pk_bytes: int = Field(description="predicted proving-key size")
    peak_memory_bytes: int = Field(description="predicted peak memory of one proof job")
    compile_peak_memory_bytes: int | None = Field(
        None, description="predicted peak memory of the compile's setup and trial proof"
    )
    setup_s: float
    prove_s: float = Field(description="predicted prove seconds (2 cores; load-dependent)")
    worker_memory_bytes: int = Field(description="the memory a worker may give one proof")
    fits: bool = Field(description="whether a proof's predicted peak memory fits a worker")
    cached: bool


class ProofAccepted(BaseModel):
    proof_id: str | None = Field(
        description="the proof's id; none for a market request (its proof is on chain)"
    )
    job_id: str
    state: str = Field(description="proving, ready or failed; requested for the market")
    batch_id: str | None = Field(
        None, description="with batching: the batch this request joined (its job proves it)"
    )


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
    parent_id: str | None = Field(
        None, description="the job this one was spawned by and that waits for it"
    )


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
    segments: list[dict[str, Any]] | None = Field(
        None,
        description="a proof in segments: each segment's circuit, ezkl proof file, public "
        "instances, timings and worker (proof and instances are then null)",
    )
    results: list[dict[str, Any]] | None = Field(
        None,
        description="a batch proof's results: each item's index, outputs and the key its "
        "result is accepted under on chain",
    )
    batch: dict[str, Any] | None = Field(
        None,
        description="a request proven in a batch (batching): its batch proof's id, its "
        "position there, the batch's size and requests, and its on-chain result key",
    )


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


class CacheUsage(Open):
    bytes: int
    entries: int
    limit_bytes: int | None = Field(description="PROVER_CACHE_BYTES (null: not bounded)")
    shared: bool = Field(description="true: a cache of the object store; false: the store")


class WorkerInfo(Open):
    name: str
    host: str = Field(description="PROVER_WORKER_ADDRESS, else the host's name")
    queues: list[str]
    concurrency: int
    memory_bytes: int = Field(description="what one job may use (PROVER_WORKER_MEMORY_BYTES)")
    cpus: int
    gpu: str | None = Field(description="the GPU it proves on (null: the CPU)")
    cache: CacheUsage
    metrics_url: str | None
    seen: str = Field(description="when it last described itself (every lease period)")
    answering: bool = Field(description="it answered a ping during this request")


class HostWorkers(Open):
    host: str
    workers: list[WorkerInfo]


class Health(Open):
    status: str = Field(description="ok, or degraded with the failing parts named")
    database: str
    broker: str
    workers: int = Field(description="workers that answered a ping")
    worker_names: list[str]
    hosts: list[HostWorkers] = Field(description="live workers by host, as each describes itself")


class MetricsTarget(Open):
    targets: list[str] = Field(description="host:port of a worker's metrics endpoint")
    labels: dict[str, str]


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


UINT96 = 2**96 - 1  # ProofMarket keeps prices and collateral in uint96
UINT32 = 2**32 - 1  # and periods in uint32


class MarketOffer(JsonBody):
    """What the service offers on the proof market (ProofMarket.sol) for the proof: the
    price ramps from ``min_price`` to ``max_price`` (wei) over ``ramp_s``; the first prover
    to lock it posts ``collateral`` and alone may fulfil it for ``lock_timeout_s``; anyone
    may until ``timeout_s``; then the escrow is refunded."""

    max_price: int = Field(gt=0, le=UINT96, description="wei, escrowed when the request opens")
    min_price: int = Field(0, ge=0, le=UINT96, description="wei, the price when it opens")
    ramp_s: int = Field(60, ge=0, le=UINT32, description="seconds from min to max price")
    lock_timeout_s: int = Field(300, ge=1, le=UINT32, description="a lock's exclusive time")
    timeout_s: int = Field(600, ge=1, le=UINT32, description="the final deadline")
    collateral: int | None = Field(
        None, ge=0, le=UINT96, description="wei a lock posts (default: max_price)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> MarketOffer:
        if self.min_price > self.max_price:
            raise ValueError("min_price is above max_price")
        if self.lock_timeout_s > self.timeout_s:
            raise ValueError("lock_timeout_s is past timeout_s")
        return self

    def terms(self) -> dict[str, int]:
        collateral = self.max_price if self.collateral is None else self.collateral
        return {**self.model_dump(), "collateral": collateral}


class ProofRequest(JsonBody):
    input: Any = Field(
        None,
        description="ezkl input.json object ({'input_data': [...]}), an object keyed by "
        "input name, or nested lists",
        examples=[{"input_data": [[0.5, -1.0, 0.25, 2.0]]}],
    )
    items: list[Any] | None = Field(
        None,
        description="for a batch circuit instead of input: its N inputs, each as a single "
        "input is given",
    )
    fresh: bool = Field(False, description="prove again even if this input was proven")
    batching: bool = Field(
        False,
        description="for a batch circuit, with one input: prove it together with this "
        "key's other requests of the circuit within PROVER_BATCH_WINDOW_MS (one batch "
        "proof; this request keeps its own proof id, outputs and verification)",
    )

    settle: bool = Field(
        False,
        description="with batching: once the batch is proven, put all its results on chain "
        "in one transaction (a submit job; the batch job's result names it)",
    )
    market: MarketOffer | None = Field(
        None,
        description="buy the proof on the proof market instead of the pool: a market job "
        "opens the request and follows it (phases requested, locked, fulfilled, expired)",
    )

    @model_validator(mode="after")
    def _one_input(self) -> ProofRequest:
        if (self.input is None) == (self.items is None):
            raise ValueError("give the input, or (for a batch circuit) the items, not both")
        if self.batching and self.items is not None:
            raise ValueError("batching takes one input; items are a whole batch already")
        if self.settle and not self.batching:
            raise ValueError("settle is for batching requests; submit other proofs yourself")
        if self.market is not None and (self.items is not None or self.batching or self.fresh):
            raise ValueError("a market request takes one input, without batching or fresh")
        return self


class DeployRequest(JsonBody):
    force: bool = Field(False, description="deploy again even if the chain has it")


class SubmitRequest(JsonBody):
    commit_reveal: bool = Field(False, description="commit, then reveal in a later block")


class RunRequest(JsonBody):
    circuit_id: str = Field(description="a training-step circuit (POST /v1/training/circuits)")
    weights: list[float] = Field(description="the initial weights, flat (flatten_params order)")
    batches: list[dict[str, Any]] = Field(
        description='one batch per step: {"x": [...], "y": [...]} (for cross-entropy, y may '
        "be class indices)"
    )


class FederatedRunRequest(JsonBody):
    circuit_id: str = Field(description="a training-step circuit (POST /v1/training/circuits)")
    weights: list[float] = Field(description="the initial global weights, flat")
    rounds: list[list[dict[str, Any]]] = Field(
        min_length=1,
        description='one list per round of one batch per client: {"x": [...], "y": [...]}; '
        "every round has the same clients",
    )
    client_weights: list[float] | None = Field(
        None, description="each client's share of the average (e.g. its sample count); equal"
    )


class RunSummary(Open):
    run_id: str
    circuit_id: str
    state: str = Field(description="running, succeeded or failed")
    steps_total: int = Field(description="steps, or rounds of a federated run")
    steps_done: int
    job_id: str = Field(description="the current (or last) step's or round's job")
    clients: int = Field(0, description="clients per round of a federated run; 0 otherwise")


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
    rounds: list[dict[str, Any]] | None = Field(
        None,
        description="a federated run's rounds: client step proofs, aggregation proof, "
        "global weights commitments in and out",
    )


class ChainRequest(JsonBody):
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


SCOPE = (
    "request (a client), prove (a prover or pool worker) or admin (key administration and "
    "what a request key does)"
)


class KeyRequest(JsonBody):
    name: str = Field(
        default="default",
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="a label for the key (no control characters)",
    )
    scope: Scope = Field(default=DEFAULT_SCOPE, description=SCOPE)


class KeyHolder(BaseModel):
    key_id: str
    name: str
    scope: str = Field(description=SCOPE)


class KeyView(KeyHolder):
    created_at: str
    revoked: bool


class NewKey(KeyHolder):
    key: str = Field(description="the secret (pk_...): shown this once, only its hash is kept")


class KeyList(BaseModel):
    items: list[KeyView] = Field(description="every key, revoked ones too, oldest first")


WebhookEvent = Annotated[
    str,
    Field(
        pattern=f"^({'|'.join(re.escape(t) for t in EVENT_TYPES)})$",
        json_schema_extra={"enum": list(EVENT_TYPES)},
    ),
]


class WebhookRequest(JsonBody):
    url: str = Field(
        min_length=1,
        max_length=2048,
        description="the endpoint, http(s); its host must resolve to public addresses only "
        "(loopback, link-local and private ones are refused unless "
        "PROVER_WEBHOOK_ALLOW_PRIVATE)",
    )
    events: list[WebhookEvent] = Field(
        min_length=1,
        max_length=len(EVENT_TYPES),
        description="the event types to deliver: job.* (each change of a job), proof.ready "
        "(a proof job succeeded), chain.accepted (a result accepted on chain), "
        "training.step_proven (a training step or federated round proven), market.* (a "
        "market request's phases)",
    )


class WebhookView(BaseModel):
    webhook_id: str
    url: str
    events: list[str]
    created_at: str


class NewWebhook(WebhookView):
    secret: str = Field(description="whsec_...: the key of every delivery's signature, shown once")


class DeletedWebhook(WebhookView):
    deleted_at: str
