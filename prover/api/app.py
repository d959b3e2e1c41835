"""The HTTP API app: middleware, error handlers and the routers of ``prover.api.routes``.

Errors are one JSON object ``{"error": {"code", "message", ...}}``, with the HTTP status
each ``ProverError`` declares: 4xx for anything the client got wrong (whatever it sends:
no client input is answered 5xx), 503 when a part of the service does not answer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis
import redis.asyncio as aioredis
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from prover import __version__
from prover.api.limits import BodyLimit, HeaderLimit, RateLimiter, TooLarge, too_large_body
from prover.api.responses import error_response
from prover.api.routes import (
    chain,
    circuits,
    events,
    health,
    jobs,
    keys,
    market,
    models,
    proofs,
    training,
    ui,
    webhooks,
)
from prover.api.routes.pages import link_items
from prover.config import Settings, get_settings, mode_line
from prover.errors import ProverError
from prover.service.db import migrate

log = logging.getLogger("prover.api")
UPLOAD_PATHS = ("/v1/models", "/v1/training/circuits")  # bodies that carry a model file


async def prover_error(_request: Request, exc: Exception) -> JSONResponse:
    """A product error, with the status its type declares (and ``Retry-After`` when the
    error says how long to wait: a quota)."""
    assert isinstance(exc, ProverError)
    retry = exc.details.get("retry_after_s")
    headers = None if retry is None else {"Retry-After": str(retry)}
    return JSONResponse({"error": json_safe(exc.to_dict())}, exc.status, headers)


def json_safe(value: Any) -> Any:
    """``value`` with what JSON cannot hold turned into text. Pydantic's errors carry the
    client's input (bytes, NaN) and, in ``ctx``, exception objects."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float):
        return value
    return str(value)


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """A body or parameter FastAPI refused, every problem named (``invalid_request``)."""
    assert isinstance(exc, RequestValidationError)
    problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return error_response(
        422, "invalid_request", "; ".join(problems), errors=json_safe(exc.errors())
    )


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown path, wrong method, unparsable body) in the same
    error shape, with their headers; a 405's ``Allow`` names every method of the path
    (Starlette's names only those of the first route that matched it)."""
    assert isinstance(exc, HTTPException)
    response = error_response(exc.status_code, "http_error", str(exc.detail))
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:
        response.headers["Allow"] = ", ".join(allowed_methods(request))
    return response


METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """The methods some route of the app answers on the request's path."""

    def answers(method: str) -> bool:
        scope = {**request.scope, "method": method}
        return any(route.matches(scope)[0] == Match.FULL for route in request.app.routes)

    return [method for method in METHODS if answers(method)]


async def part_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """Redis or the database dropped on a request's path where nothing falls back: 503
    ``unavailable`` naming the part, never a plain-text 500 (the client may retry)."""
    part = "the broker (Redis)" if isinstance(exc, redis.RedisError) else "the database"
    log.warning("%s does not answer: %s", part, exc)
    return error_response(503, "unavailable", f"{part} does not answer; try again later")


async def body_too_large(_request: Request, exc: Exception) -> JSONResponse:
    """A body found over the limit while it was read (chunked, or longer than declared)."""
    assert isinstance(exc, TooLarge)
    return JSONResponse(too_large_body(exc.limit), 413)


SERVER_HEAD_FACTOR = 16  # the server buffers a request head up to this many header limits


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options past ``create_app``'s: its buffer for a request's head (h11's,
    16 KiB by default) well over the app's header limit, so that the app answers
    oversized headers (431, in its error shape) rather than the server (plain-text 400)."""
    return {"h11_max_incomplete_event_size": SERVER_HEAD_FACTOR * settings.max_header_bytes}


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app for ``settings``: migrates the database and opens Redis when it starts."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info(mode_line(settings))
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
    app.state.limiter = RateLimiter(
        settings.redis_url, settings.rate_limit_per_s, settings.rate_limit_burst
    )
    app.add_middleware(
        BodyLimit,
        default=settings.max_request_bytes,
        uploads=settings.max_request_bytes + settings.max_model_bytes,
        upload_paths=UPLOAD_PATHS,
    )
    app.add_middleware(HeaderLimit, limit=settings.max_header_bytes)  # outermost: first
    app.add_exception_handler(ProverError, prover_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(TooLarge, body_too_large)
    for outage in (redis.ConnectionError, redis.TimeoutError, sqlalchemy.exc.OperationalError):
        app.add_exception_handler(outage, part_unavailable)
    for module in (
        health,
        models,
        training,
        proofs,
        chain,
        jobs,
        events,
        circuits,
        keys,
        market,
        webhooks,
        ui,
    ):
        app.include_router(module.router)
    link_items(app)
    return app
