"""Chain errors that need no node: an RPC nobody answers, Solidity that does not compile."""

from __future__ import annotations

import pytest

from prover.chain.client import connect
from prover.chain.node import ANVIL_DEV_KEY, free_port
from prover.chain.solidity import compile_sources
from prover.errors import ChainError, ChainUnavailableError, SolidityError, is_transient


def test_an_unreachable_rpc_is_a_transient_chain_error() -> None:
    with pytest.raises(ChainUnavailableError, match="no EVM JSON-RPC answers") as raised:
        connect(f"http://127.0.0.1:{free_port()}", ANVIL_DEV_KEY)
    assert isinstance(raised.value, ChainError) and is_transient(raised.value)


def test_a_reverted_transaction_is_not_transient() -> None:
    assert not is_transient(ChainError("transaction 0xab reverted"))


def test_solidity_errors_are_reported() -> None:
    with pytest.raises(SolidityError, match="Solidity compilation failed"):
        compile_sources({"Bad.sol": "pragma solidity ^0.8.0; contract C { function f( }"})
