"""The error responses every route documents, and the one shape every error body has:
``{"error": {"code", "message", ...}}``."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from prover.api.schemas import ErrorBody

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing, unknown or revoked API key"},
    404: {"model": ErrorBody, "description": "no such id, or not visible to this key"},
    409: {
        "model": ErrorBody,
        "description": "not ready yet (still compiling or proving) or failed",
    },
    413: {"model": ErrorBody, "description": "request body or model over the limits"},
    422: {"model": ErrorBody, "description": "bad input: the error names the problem"},
    503: {"model": ErrorBody, "description": "the broker or the database does not answer"},
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: what any authenticated route may answer (401, 404,
    422, 503) and the route's own ``codes``."""
    return {code: ERRORS[code] for code in (401, 404, 422, 503, *codes)}


def error_response(status: int, code: str, message: str, **details: Any) -> JSONResponse:
    """An error body with its status."""
    return JSONResponse({"error": {"code": code, "message": message, **details}}, status)
