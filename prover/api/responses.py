"""The error responses every route documents, and the one shape every error body has:
``{"error": {"code", "message", ...}}``."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from prover.api.schemas import ErrorBody

RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before sending the request again",
        "schema": {"type": "integer"},
    }
}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "the body could not be read (malformed)"},
    401: {"model": ErrorBody, "description": "missing, unknown or revoked API key"},
    403: {
        "model": ErrorBody,
        "description": "this key's scope does not reach the route (forbidden: the error "
        "names the scope needed and the key's)",
    },
    404: {"model": ErrorBody, "description": "no such id, or not visible to this key"},
    409: {
        "model": ErrorBody,
        "description": "not ready yet (still compiling or proving) or failed",
    },
    413: {"model": ErrorBody, "description": "request body or model over the limits"},
    415: {"model": ErrorBody, "description": "a body that is not JSON (send application/json)"},
    422: {"model": ErrorBody, "description": "bad input: the error names the problem"},
    431: {
        "model": ErrorBody,
        "description": "request headers over the limit (PROVER_MAX_HEADER_BYTES)",
    },
    429: {
        "model": ErrorBody,
        "description": "over a quota of this key: rate_limited (requests per second) or "
        "quota_exceeded (jobs queued or running); wait Retry-After seconds",
        "headers": RETRY_AFTER,
    },
    503: {"model": ErrorBody, "description": "the broker or the database does not answer"},
}
BODY = (400, 413)  # what any route with a request body may answer besides
JSON_BODY = (*BODY, 415)  # ... and with a JSON body


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: what any authenticated route may answer (401, 403,
    404, 422, 429, 431, 503) and the route's own ``codes``."""
    defaults = {401, 403, 404, 422, 429, 431, 503}
    return {code: ERRORS[code] for code in sorted({*defaults, *codes})}


def error_response(status: int, code: str, message: str, **details: Any) -> JSONResponse:
    """An error body with its status."""
    return JSONResponse({"error": {"code": code, "message": message, **details}}, status)
