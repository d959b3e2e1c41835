"""The HTTP API: every route is a few lines that call a service function.

Errors are one JSON object ``{"error": {"code", "message", ...}}`` with a 4xx status for
anything the client got wrong and 503 when a part of the service does not answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import redis
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from prover import __version__
from prover.api import schemas
from prover.api.health import check, metrics_text
from prover.api.limits import BodyLimit
from prover.config import Settings, get_settings
from prover.errors import InvalidInputError, ProverError, UnavailableError
from prover.service import jobs, queries, submissions, training
from prover.service.db import migrate
from prover.service.keys import authenticate
from prover.service.kinds import job_kind
from prover.service.options import CompileRequest
from prover.worker.app import enqueue, job_channel

log = logging.getLogger("prover.api")
JOB_POLL_S = 0.25  # how often a waiting request reads the job when Redis cannot wake it

STATUS = {
    "invalid_model": 422,
    "unsupported_operator": 422,
    "invalid_input": 422,
    "circuit_error": 422,
    "model_too_large": 413,
    "not_found": 404,
    "unauthorized": 401,
    "conflict": 409,
    "unavailable": 503,
}
E = schemas.ErrorBody
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": E, "description": "missing, unknown or revoked API key"},
    404: {"model": E, "description": "no such id, or not visible to this key"},
    409: {"model": E, "description": "not ready yet (still compiling or proving) or failed"},
    413: {"model": E, "description": "request body or model over the limits"},
    422: {"model": E, "description": "bad input: the error names the problem"},
    503: {"model": E, "description": "the broker or the database does not answer"},
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: ERRORS[code] for code in (401, 404, 422, 503, *codes)}


def _error(status: int, code: str, message: str, **details: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **details}}, status)


bearer = HTTPBearer(auto_error=False, description="An API key from `prover keys create`.")


def _owner(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The id of the presented API key."""
    db = request.app.state.settings.sqlalchemy_url()
    return authenticate(db, credentials.credentials if credentials else None)


Owner = Annotated[str, Depends(_owner)]
Limit = Annotated[int, Query(ge=1, le=queries.MAX_PAGE)]


def _saved_model(upload: UploadFile, folder: Path) -> Path:
    """An uploaded model written to ``folder`` under its (sanitised) name."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(upload.filename or "model.onnx").name)
    path = folder / (name.lstrip(".") or "model.onnx")
    path.write_bytes(upload.file.read())
    return path


def _json_part(upload: UploadFile, part: str) -> Any:
    """A JSON file part of a multipart request; ``InvalidInputError`` naming the part."""
    try:
        return json.loads(upload.file.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"the {part!r} file is not valid JSON: {exc}") from exc


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    db = settings.sqlalchemy_url()

    async def _wait_for_end(
        client: aioredis.Redis, job_id: str, deadline: float, key: str
    ) -> dict[str, Any]:
        """Re-read the job whenever a worker announces its end (or every second)."""
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(job_channel(job_id))  # before the re-read: no lost wake-up
        except redis.RedisError:
            pubsub = None
        try:
            while True:
                job = await run_in_threadpool(queries.get_job, settings, key, job_id)
                remaining = deadline - time.monotonic()
                if job["state"] in jobs.TERMINAL or remaining <= 0:
                    return job
                if pubsub is None:
                    await asyncio.sleep(min(remaining, JOB_POLL_S))
                    continue
                await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=min(remaining, 1.0)
                )
        finally:
            if pubsub is not None:
                await pubsub.aclose()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        migrate(db)
        app.state.redis = aioredis.Redis.from_url(settings.redis_url)
        yield
        await app.state.redis.aclose()

    app = FastAPI(
        title="prover",
        version=__version__,
        description="Proven ML inference: compile ONNX models into ezkl circuits, request "
        "proofs through a queue of workers, verify them here or on chain.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(
        BodyLimit,
        default=settings.max_request_bytes,
        uploads=settings.max_request_bytes + settings.max_model_bytes,
        upload_paths=("/v1/models", "/v1/training/circuits"),
    )

    @app.exception_handler(ProverError)
    async def _prover_error(_request: Request, exc: ProverError) -> JSONResponse:
        return JSONResponse({"error": exc.to_dict()}, STATUS.get(exc.code, 500))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return _error(422, "invalid_request", "; ".join(problems), errors=exc.errors())

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", str(exc.detail))

    def dispatch(accepted: submissions.Accepted) -> dict[str, Any]:
        response, to_enqueue = accepted
        for job_id, kind in to_enqueue:
            try:
                enqueue(job_id, kind, settings)
            except Exception as exc:
                error = {"code": "unavailable", "message": f"the queue refused the job: {exc}"}
                jobs.abandon(db, job_id, error, job_kind(kind).on_end)
                raise UnavailableError(
                    f"the queue ({settings.redis_url}) does not answer; try again later"
                ) from exc
        return response

    @app.get("/health", response_model=schemas.Health, responses={503: {"model": schemas.Health}})
    def health() -> JSONResponse:
        """200 only when the database, the broker and at least one worker answer."""
        report = check(settings)
        return JSONResponse(report, 200 if report["status"] == "ok" else 503)

    @app.get("/metrics", response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics: queue depth, jobs by state, phase durations, failures."""
        return Response(metrics_text(settings), media_type="text/plain; version=0.0.4")

    @app.post(
        "/v1/models",
        status_code=202,
        response_model=schemas.CompileAccepted,
        responses=_errors(413),
    )
    def submit_model(
        key: Owner,
        model: Annotated[UploadFile, File(description="ONNX model file")],
        calibration: Annotated[
            UploadFile | None, File(description="calibration data (ezkl input.json, ...)")
        ] = None,
        input_visibility: Annotated[str | None, Form()] = None,
        param_visibility: Annotated[str | None, Form()] = None,
        output_visibility: Annotated[str | None, Form()] = None,
        tolerance: Annotated[float | None, Form(gt=0)] = None,
        strategy: Annotated[str | None, Form(description="search or ezkl-default")] = None,
        objective: Annotated[str | None, Form(description="prove-time or verify-gas")] = None,
        lookup_margin: Annotated[float | None, Form(ge=1)] = None,
        reusable_verifier: Annotated[bool | None, Form()] = None,
    ) -> dict[str, Any]:
        """Accept a model for compilation into a circuit (202; the job compiles it).

        The model and calibration data are checked before the job exists; the same
        request twice answers with the same circuit and job."""
        requested = {
            "input_visibility": input_visibility,
            "param_visibility": param_visibility,
            "output_visibility": output_visibility,
            "tolerance": tolerance,
            "strategy": strategy,
            "objective": objective,
            "lookup_margin": lookup_margin,
            "reusable_verifier": reusable_verifier,
        }
        requested = {k: v for k, v in requested.items() if v is not None}
        with tempfile.TemporaryDirectory() as tmp:
            path = _saved_model(model, Path(tmp))
            cal = None if calibration is None else _json_part(calibration, "calibration")
            return dispatch(
                submissions.submit_compile(
                    settings, key, path, cal, CompileRequest.parse(requested)
                )
            )

    @app.post(
        "/v1/training/circuits",
        status_code=202,
        response_model=schemas.CompileAccepted,
        responses=_errors(413),
        tags=["training"],
    )
    def submit_step_circuit(
        key: Owner,
        model: Annotated[
            UploadFile, File(description="an exported SGD step graph (`prover train export`)")
        ],
        sample: Annotated[
            UploadFile, File(description='a sample step, JSON {"weights", "x", "y"}')
        ],
        reusable_verifier: Annotated[bool, Form()] = True,
    ) -> dict[str, Any]:
        """Accept a training-step graph for compilation into a step circuit (202; a compile
        job). The scale is chosen against the sample step's weight update."""
        with tempfile.TemporaryDirectory() as tmp:
            path, data = _saved_model(model, Path(tmp)), _json_part(sample, "sample")
            accepted = training.submit_step_circuit(settings, key, path, data, reusable_verifier)
            return dispatch(accepted)

    @app.post(
        "/v1/training/runs",
        status_code=202,
        response_model=schemas.RunSummary,
        responses=_errors(409, 413),
        tags=["training"],
    )
    def submit_run(body: schemas.RunRequest, key: Owner) -> dict[str, Any]:
        """Start a training run: one proven step per batch, each from the weights the
        previous step produced (202; one job per step, in order). The same run twice is
        one run; a failed run submitted again resumes after its last proven step."""
        accepted = training.submit_run(settings, key, body.circuit_id, body.weights, body.batches)
        return dispatch(accepted)

    @app.get(
        "/v1/training/runs/{run_id}",
        response_model=schemas.RunView,
        responses=_errors(),
        tags=["training"],
    )
    def get_run(
        run_id: str,
        key: Owner,
        steps: Annotated[
            bool, Query(description="false: only the state (cheap, for polling)")
        ] = True,
    ) -> dict[str, Any]:
        """A run's state and its proven steps (proof ids, commitments, losses, error
        against float training); the final weights once it succeeded."""
        return training.get_run(settings, key, run_id, steps)

    @app.post(
        "/v1/training/runs/{run_id}/ledger",
        status_code=202,
        response_model=schemas.JobAccepted,
        responses=_errors(409, 413),
        tags=["training"],
    )
    def put_run_on_ledger(run_id: str, key: Owner) -> dict[str, Any]:
        """Put a succeeded run on the service chain's TrainingLedger (a job on the chain
        queue): start it under its id with its initial weights and its batch schedule
        pinned, then submit every step proof the ledger has not accepted yet. Safe to
        repeat; the job's result is the run as the ledger holds it."""
        return dispatch(training.submit_ledger(settings, key, run_id))

    @app.get(
        "/v1/training/runs",
        response_model=schemas.Page,
        responses=_errors(),
        tags=["training"],
    )
    def list_runs(key: Owner, limit: Limit = 20, cursor: int | None = None) -> dict[str, Any]:
        """This key's training runs, newest first; pass next_cursor as cursor."""
        return queries.list_items(settings, key, "run", limit, cursor)

    @app.post(
        "/v1/training/verify-chain",
        response_model=schemas.ChainResult,
        responses=_errors(413),
        tags=["training"],
    )
    def verify_chain(body: schemas.ChainRequest, key: Owner) -> dict[str, Any]:
        """Check step proofs and that each starts from the weights the previous one
        produced (and, if given, from the initial weights, on the given batches)."""
        return training.verify_steps(
            settings, key, body.proof_ids, body.batches, body.initial_weights
        )

    @app.post(
        "/v1/circuits/{circuit_id}/proofs",
        status_code=202,
        response_model=schemas.ProofAccepted,
        responses=_errors(409, 413),
    )
    def request_proof(circuit_id: str, body: schemas.ProofRequest, key: Owner) -> dict[str, Any]:
        """Request a proven inference (202; the job proves it). The input is checked
        against the circuit's input shapes first; the same input twice is one proof."""
        accepted = submissions.request_proof(settings, key, circuit_id, body.input, body.fresh)
        return dispatch(accepted)

    @app.post(
        "/v1/circuits/{circuit_id}/deployments",
        status_code=202,
        response_model=schemas.JobAccepted,
        responses=_errors(409, 413),
    )
    def deploy(
        circuit_id: str, key: Owner, body: schemas.DeployRequest | None = None
    ) -> dict[str, Any]:
        """Deploy the circuit's verifier contract and register it, on the service's chain
        (a job on the chain queue; its result has the addresses)."""
        params = {"force": bool(body and body.force)}
        return dispatch(submissions.submit_chain_job(settings, key, "deploy", circuit_id, params))

    @app.post(
        "/v1/proofs/{proof_id}/submissions",
        status_code=202,
        response_model=schemas.JobAccepted,
        responses=_errors(409, 413),
    )
    def submit_onchain(
        proof_id: str, key: Owner, body: schemas.SubmitRequest | None = None
    ) -> dict[str, Any]:
        """Submit the proven result to the chain's ProvenResults contract (a chain job;
        deploy the circuit first)."""
        params = {"commit_reveal": bool(body and body.commit_reveal)}
        return dispatch(submissions.submit_chain_job(settings, key, "submit", proof_id, params))

    @app.get("/v1/jobs/{job_id}", response_model=schemas.JobView, responses=_errors())
    async def get_job(
        job_id: str,
        key: Owner,
        wait: Annotated[
            float, Query(ge=0, le=60, description="seconds to wait for the job to end")
        ] = 0,
    ) -> dict[str, Any]:
        """A job's state, phase, progress (0..1), timings, and error or result. With
        ``wait``, answers as soon as the job ends (or when the wait is over)."""
        job = await run_in_threadpool(queries.get_job, settings, key, job_id)
        if job["state"] in jobs.TERMINAL or wait <= 0:
            return job
        return await _wait_for_end(app.state.redis, job_id, time.monotonic() + wait, key)

    @app.get("/v1/proofs/{proof_id}", response_model=schemas.ProofView, responses=_errors())
    def get_proof(proof_id: str, key: Owner) -> dict[str, Any]:
        """A proof's state; once ready the proof, public instances, outputs and timings."""
        return queries.get_proof(settings, key, proof_id)

    @app.get("/v1/proofs/{proof_id}/ezkl", responses=_errors())
    def get_proof_file(proof_id: str, key: Owner) -> FileResponse:
        """The proof in ezkl's own JSON format (`ezkl verify` accepts it)."""
        return FileResponse(queries.proof_file(settings, key, proof_id), filename="proof.json")

    @app.post(
        "/v1/proofs/{proof_id}/verify",
        response_model=schemas.VerifyResult,
        responses=_errors(413),
    )
    def verify(proof_id: str, key: Owner) -> dict[str, Any]:
        """Verify a ready proof with ezkl against its circuit's verifying key."""
        return queries.verify_proof(settings, key, proof_id)

    @app.get("/v1/circuits/{circuit_id}", response_model=schemas.CircuitView, responses=_errors())
    def get_circuit(circuit_id: str, key: Owner) -> dict[str, Any]:
        """A circuit's state; once ready its record (settings, accuracy, search trials)."""
        return queries.get_circuit(settings, key, circuit_id)

    @app.get("/v1/models/{model_id}", responses=_errors())
    def get_model(model_id: str, key: Owner) -> dict[str, Any]:
        """A model's record: inputs, outputs, operators, parameter count."""
        return queries.get_model(settings, key, model_id)

    def lister(kind: str) -> Any:
        def list_kind(key: Owner, limit: Limit = 20, cursor: int | None = None) -> dict[str, Any]:
            return queries.list_items(settings, key, kind, limit, cursor)

        return list_kind

    for kind in ("model", "circuit", "proof", "job"):
        app.get(
            f"/v1/{kind}s",
            response_model=schemas.Page,
            responses=_errors(),
            summary=f"List {kind}s",
            description=f"This key's {kind}s, newest first; pass next_cursor as cursor.",
        )(lister(kind))

    return app
