"""Retries ask the error whether it is transient; no handler keeps a list of its own."""

from __future__ import annotations

import pytest
import redis
import requests
from sqlalchemy.exc import OperationalError

from prover.errors import (
    ChainUnavailableError,
    CircuitError,
    InvalidInputError,
    ProverError,
    UnavailableError,
    is_transient,
)
from prover.service.execution import error_of


@pytest.mark.parametrize(
    "error",
    [
        UnavailableError("the broker does not answer"),
        ChainUnavailableError("no EVM JSON-RPC answers"),
        OperationalError("SELECT 1", {}, Exception("connection refused")),
        redis.ConnectionError("connection refused"),
        requests.ConnectionError("connection refused"),
        ConnectionResetError(),
        TimeoutError(),
    ],
)
def test_a_part_that_does_not_answer_is_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        InvalidInputError("input 0 has 3 values, the model takes 4"),
        CircuitError("no candidate reached the tolerance"),
        ProverError("this worker derives another circuit id"),
        ValueError("a bug"),
        FileNotFoundError("pk.key"),
    ],
)
def test_a_users_error_or_a_bug_is_not(error: BaseException) -> None:
    assert not is_transient(error)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ChainUnavailableError("no EVM JSON-RPC answers"), "chain_unavailable"),
        (requests.ConnectionError("connection refused"), "chain_unavailable"),
        (OperationalError("SELECT 1", {}, Exception("connection refused")), "database_unavailable"),
        (redis.ConnectionError("connection refused"), "broker_unavailable"),
        (TimeoutError(), "unavailable"),
        (ValueError("a bug"), "internal_error"),
    ],
)
def test_a_recorded_error_names_the_part_that_did_not_answer(
    error: BaseException, code: str
) -> None:
    assert error_of(error)["code"] == code
