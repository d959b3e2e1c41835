"""Submitting the call that accepts something on chain (a result, a batch, a composite, a
training step or round): a refusal is an answer, ``accepted`` false with the contract's
reason, not an error, and costs no gas (the call is simulated before it is sent)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hexbytes import HexBytes
from web3.types import TxParams

from prover.chain.client import Chain, noted_receipt
from prover.chain.contracts import transact
from prover.errors import ChainError

# Makes the accepting call, sending first what it needs (a commitment); returns the call and
# the gas of what it sent, by answer field (``commit_gas_used``...).
Prepare = Callable[[], tuple[Any, dict[str, int]]]


def calldata(contract: Any, call: Any) -> bytes:
    """The transaction data of a call to ``contract``."""
    return bytes(HexBytes(contract.encode_abi(call.fn_name, args=call.args)))


def submit(chain: Chain, contract: Any, prepare: Prepare) -> tuple[dict[str, Any], Any | None]:
    """(answer, receipt) of the call ``prepare`` makes. Accepted: ``accepted``, ``reason``
    None, ``tx_hash``, ``block``, ``gas_used`` (the prepared gas included) and the prepared
    gas by name. Refused (a ``ChainError`` from ``prepare`` or the simulation): ``accepted``
    false, the revert reason, ``tx_hash`` None, and no receipt.

    The journal is asked before the simulation: a retry whose earlier try was accepted but
    lost its receipt would now be refused as a replay (``AlreadyAccepted``, ``OutOfOrder``),
    so the noted transaction answers instead."""
    spent: dict[str, int] = {}
    try:
        call, spent = prepare()
        intent: TxParams = {"to": contract.address, "data": calldata(contract, call)}
        receipt = noted_receipt(chain, intent) or transact(chain, call)
    except ChainError as exc:
        reason = exc.details.get("revert", exc.message)
        refused = {"accepted": False, "reason": reason, "tx_hash": None}
        return {**spent, **refused, "gas_used": sum(spent.values()) or None}, None
    return {
        **spent,
        "accepted": True,
        "reason": None,
        "tx_hash": receipt["transactionHash"].to_0x_hex(),
        "block": receipt["blockNumber"],
        "gas_used": sum(spent.values()) + receipt["gasUsed"],
    }, receipt
