"""User-facing errors: each names the problem and what to do about it."""

from __future__ import annotations

from typing import Any


class ProverError(Exception):
    """Base of every error the user can cause; ``code`` is stable for scripts and HTTP."""

    code = "prover_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


class InvalidModelError(ProverError):
    """The file is not a usable ONNX model (corrupt, fails the checker, cannot run)."""

    code = "invalid_model"


class UnsupportedOperatorError(ProverError):
    """The model uses operators that ezkl cannot put in a circuit."""

    code = "unsupported_operator"


class ModelTooLargeError(ProverError):
    """The model exceeds a configured intake limit."""

    code = "model_too_large"


class InvalidInputError(ProverError):
    """Input or calibration data does not match the model's inputs."""

    code = "invalid_input"


class NotFoundError(ProverError):
    """An id that names no stored model, circuit or proof."""

    code = "not_found"


class CircuitError(ProverError):
    """ezkl could not build a circuit for this model under any candidate settings."""

    code = "circuit_error"


class SRSError(ProverError):
    """The structured reference string is missing, unreadable or too small."""

    code = "srs_error"


class AuthError(ProverError):
    """Missing, unknown or revoked API key."""

    code = "unauthorized"


class ConflictError(ProverError):
    """The request is valid but cannot be served in the current state (e.g. still compiling)."""

    code = "conflict"


class UnavailableError(ProverError):
    """A part of the service (broker, database, chain) does not answer; try again later."""

    code = "unavailable"
