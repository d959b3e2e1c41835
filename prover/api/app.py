"""The HTTP API app: middleware, error handlers and the routers of ``prover.api.routes``.

Errors are one JSON object ``{"error": {"code", "message", ...}}``, with the HTTP status
each ``ProverError`` declares: 4xx for anything the client got wrong, 503 when a part of
the service does not answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from prover import __version__
from prover.api.limits import BodyLimit
from prover.api.responses import error_response
from prover.api.routes import chain, circuits, health, jobs, models, proofs, training
from prover.config import Settings, get_settings
from prover.errors import ProverError
from prover.service.db import migrate

UPLOAD_PATHS = ("/v1/models", "/v1/training/circuits")  # bodies that carry a model file


async def prover_error(_request: Request, exc: Exception) -> JSONResponse:
    """A product error, with the status its type declares."""
    assert isinstance(exc, ProverError)
    return JSONResponse({"error": exc.to_dict()}, exc.status)


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """A body or parameter FastAPI refused, every problem named (``invalid_request``)."""
    assert isinstance(exc, RequestValidationError)
    problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return error_response(422, "invalid_request", "; ".join(problems), errors=exc.errors())


async def http_error(_request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown path, wrong method) in the same error shape."""
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, "http_error", str(exc.detail))


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app for ``settings``: migrates the database and opens Redis when it starts."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        migrate(settings.sqlalchemy_url())
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
        upload_paths=UPLOAD_PATHS,
    )
    app.add_exception_handler(ProverError, prover_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    for module in (health, models, training, proofs, chain, jobs, circuits):
        app.include_router(module.router)
    return app
