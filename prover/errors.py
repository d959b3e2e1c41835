"""User-facing errors: each names the problem and what to do about it.

Every error type carries what its handlers need, so that no handler keeps a list of its
own: a stable ``code`` (scripts and HTTP bodies), the HTTP ``status`` it maps to, and
whether it is ``transient`` (a part did not answer: the same work may succeed later, so
the queue retries it instead of failing the job).
"""

from __future__ import annotations

from typing import Any


class ProverError(Exception):
    """Base of every error the product raises on purpose."""

    code = "prover_error"
    status = 500
    transient = False

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


class InvalidModelError(ProverError):
    """The file is not a usable ONNX model (corrupt, fails the checker, cannot run)."""

    code = "invalid_model"
    status = 422


class UnsupportedOperatorError(ProverError):
    """The model uses operators that ezkl cannot put in a circuit."""

    code = "unsupported_operator"
    status = 422


class ModelTooLargeError(ProverError):
    """The model exceeds a configured intake limit."""

    code = "model_too_large"
    status = 413


class ResourceLimitError(ProverError):
    """Work on a model ran past its memory or time limit in a child process (an oversized
    or hostile model): refused for good, since the same work would hit the same limit."""

    code = "resource_limit"
    status = 413


class CapacityError(ProverError):
    """The work needs more memory than any worker may give it: refused before any job,
    naming the need and the capacity (split the model into segments to fit)."""

    code = "over_capacity"
    status = 413


class ChildJobError(ProverError):
    """A job this one waited for (a proof's segment) failed: the parent fails with the
    child's own code, naming the child."""

    def __init__(self, message: str, code: str, **details: Any) -> None:
        super().__init__(message, **details)
        self.code = code


class InvalidInputError(ProverError):
    """Input or calibration data does not match the model's inputs."""

    code = "invalid_input"
    status = 422


class WebhookAddressError(InvalidInputError):
    """A webhook URL whose host resolves to an address the service must not call
    (loopback, link-local, private, reserved), or to none."""

    code = "webhook_address_refused"


class NotFoundError(ProverError):
    """An id that names no stored model, circuit or proof."""

    code = "not_found"
    status = 404


class CircuitError(ProverError):
    """ezkl could not build a circuit for this model under any candidate settings."""

    code = "circuit_error"
    status = 422


class SRSError(ProverError):
    """The structured reference string is missing, unreadable or too small (the
    operator's set-up, not the request)."""

    code = "srs_error"
    status = 500


class AuthError(ProverError):
    """Missing, unknown or revoked API key."""

    code = "unauthorized"
    status = 401


class ForbiddenError(ProverError):
    """A valid API key whose scope does not reach the route (a prover's key on a
    requester's data, a requester's key on key administration): another key is needed,
    not the same one again, hence 403 and not 401."""

    code = "forbidden"
    status = 403


class ConflictError(ProverError):
    """The request is valid but cannot be served in the current state (e.g. still compiling)."""

    code = "conflict"
    status = 409


class UnavailableError(ProverError):
    """A part of the service (broker, database) does not answer; try again later."""

    code = "unavailable"
    status = 503
    transient = True


class StoreUnavailableError(UnavailableError):
    """The object store did not answer (or answered 5xx); the same call may succeed later."""

    code = "store_unavailable"


class StoreIntegrityError(ProverError):
    """A stored object's bytes differ from its entry's manifest (tampered or damaged): the
    entry is refused, and nothing of it is kept."""

    code = "store_integrity"
    status = 500


class ChainError(ProverError):
    """The chain refused a transaction or holds something else than expected."""

    code = "chain_error"
    status = 502


class ChainUnavailableError(ChainError):
    """No chain answers at the configured endpoint; the same call may succeed later."""

    code = "chain_unavailable"
    status = 503
    transient = True


class MarketExpiredError(ChainError):
    """A market request passed its final deadline unfulfilled (its escrow is refunded)."""

    code = "market_expired"
    status = 409


class ToolchainError(ProverError):
    """A required external tool (solc, node, anvil) is missing or failed to start."""

    code = "toolchain_missing"
    status = 500


class SolidityError(ProverError):
    """The Solidity compiler rejected a source."""

    code = "solidity_error"
    status = 500


class UnsupportedMediaTypeError(ProverError):
    """A body sent with a content type the endpoint does not read (e.g. text/plain for a
    JSON body)."""

    code = "unsupported_media_type"
    status = 415


class QuotaError(ProverError):
    """A key is at one of its quotas (jobs in flight); the same request may succeed after
    ``retry_after_s`` seconds (the API's ``Retry-After``)."""

    code = "quota_exceeded"
    status = 429

    def __init__(self, message: str, retry_after_s: int, **details: Any) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **details)


class RateLimitError(QuotaError):
    """A key sent more requests than its rate allows."""

    code = "rate_limited"


def _infrastructure_errors() -> tuple[tuple[type[BaseException], str], ...]:
    """Errors of the libraries that reach other processes, raised when those do not
    answer (a dropped connection, a timeout), each with the code a job records for it:
    the part that did not answer (web3 reaches the chain through requests)."""
    import botocore.exceptions as boto
    import redis
    import requests
    from sqlalchemy.exc import InterfaceError, OperationalError

    return (
        (requests.ConnectionError, "chain_unavailable"),
        (requests.Timeout, "chain_unavailable"),
        (OperationalError, "database_unavailable"),
        (InterfaceError, "database_unavailable"),
        (redis.ConnectionError, "broker_unavailable"),
        (redis.TimeoutError, "broker_unavailable"),
        # The object store (the artifact store shared by hosts), when a call escapes
        # prover.objects' own StoreUnavailableError (a transfer thread's failure).
        (boto.ConnectionError, "store_unavailable"),
        (boto.HTTPClientError, "store_unavailable"),
        (ConnectionError, "unavailable"),
        (TimeoutError, "unavailable"),
    )


def panic_error(exc: BaseException) -> CircuitError | None:
    """ezkl's panic as the job's own error, or None for anything else. A Rust panic reaches
    Python as pyo3's ``PanicException``, a ``BaseException`` (its class is not importable),
    which ``except Exception`` misses: the job would sit until its lease lapsed."""
    if type(exc).__name__ != "PanicException":
        return None
    return CircuitError(
        f"ezkl panicked: {str(exc).strip()[:300]} (a value may be outside what the circuit "
        "can represent)"
    )


def transient_code(exc: BaseException) -> str | None:
    """The error code of a transient fault (a ``ProverError``'s own, or the part a
    library's error says did not answer); None when the failure is not transient."""
    if isinstance(exc, ProverError):
        return exc.code if exc.transient else None
    return next((code for kind, code in _infrastructure_errors() if isinstance(exc, kind)), None)


def is_transient(exc: BaseException) -> bool:
    """Whether the failed work may succeed if tried again later (a part did not answer)."""
    return transient_code(exc) is not None
