"""web3.py access to a chain: a connection with a sending account, deploys and calls.

Sending is idempotent across retries of the same work when a *journal* is open
(``transactions``): each signed transaction is noted, under what it does (sender, chain,
target, value, data), before it is broadcast; a retry that means the same transaction finds
the note and waits for that one (by its hash, rebroadcasting the same signed bytes if the
node dropped it while its nonce is still free) instead of signing a second one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError, TimeExhausted, TransactionNotFound
from web3.types import TxParams

from prover.errors import ChainError, ChainUnavailableError

# The chain did not answer (down, dropped the connection, timed out): worth a retry.
UNANSWERED = (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)
_journal: ContextVar[Path | None] = ContextVar("prover_tx_journal", default=None)


@dataclass
class Chain:
    w3: Web3
    account: LocalAccount
    receipt_timeout_s: float = 120.0

    @property
    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)


def connect(rpc_url: str, private_key: str) -> Chain:
    """A connection to an EVM JSON-RPC endpoint, sending from ``private_key``'s account."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    try:
        w3.eth.chain_id  # noqa: B018 - a cheap call that proves the endpoint answers
    except Exception as exc:
        raise ChainUnavailableError(f"no EVM JSON-RPC answers at {rpc_url}: {exc}") from exc
    try:
        account = Account.from_key(private_key)
    except Exception as exc:
        raise ChainError("the private key is not a valid 32-byte hex key") from exc
    return Chain(w3, account)


@contextlib.contextmanager
def transactions(journal: Path) -> Iterator[None]:
    """Note every transaction ``send`` signs in the JSON file ``journal`` before it is
    broadcast (see the module docstring); one journal per piece of work (a job)."""
    token = _journal.set(journal)
    try:
        yield
    finally:
        _journal.reset(token)


def _intent(chain: Chain, tx: TxParams | dict[str, Any]) -> str:
    """What a transaction does, whatever its nonce, gas and fees."""
    data = tx.get("data") or b""
    what = {
        "chain": chain.chain_id,
        "from": chain.account.address,
        "to": str(tx.get("to") or ""),
        "value": int(tx.get("value") or 0),
        "data": HexBytes(data).hex(),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def _notes(journal: Path) -> dict[str, dict[str, Any]]:
    try:
        return dict(json.loads(journal.read_text()))
    except FileNotFoundError:
        return {}


def _note(journal: Path, intent: str, entry: dict[str, Any]) -> None:
    """Write the note durably before the transaction can reach the chain."""
    journal.parent.mkdir(parents=True, exist_ok=True)
    staged = journal.with_suffix(f".{os.getpid()}.tmp")
    staged.write_text(json.dumps({**_notes(journal), intent: entry}))
    os.replace(staged, journal)


def _resume(chain: Chain, noted: dict[str, Any]) -> str | None:
    """The hash of a noted transaction the chain has (mined or pending) or can still take
    (its nonce is free: the same signed bytes are broadcast again); None when it can never
    land (its nonce went to another transaction), so a new one must be signed."""
    tx_hash = noted["hash"]
    for lookup in (chain.w3.eth.get_transaction_receipt, chain.w3.eth.get_transaction):
        with contextlib.suppress(TransactionNotFound):
            lookup(tx_hash)
            return str(tx_hash)
    if chain.w3.eth.get_transaction_count(chain.account.address, "latest") != noted["nonce"]:
        return None
    with contextlib.suppress(ValueError):  # "already known": fine, it is the same one
        chain.w3.eth.send_raw_transaction(HexBytes(noted["raw"]))
    return str(tx_hash)


def _sign_and_send(chain: Chain, tx: TxParams, journal: Path | None, intent: str) -> str:
    tx = {
        **tx,
        "from": chain.account.address,
        "nonce": chain.w3.eth.get_transaction_count(chain.account.address, "pending"),
        "chainId": chain.chain_id,
    }
    # Estimate against the pending block: the one the transaction will land in.
    tx.setdefault("gas", int(chain.w3.eth.estimate_gas(tx, "pending") * 1.2))
    if "maxFeePerGas" not in tx:
        tx.setdefault("gasPrice", chain.w3.eth.gas_price)
    # eth_account types a transaction as a plain dict, web3 as the TxParams TypedDict.
    signed = chain.account.sign_transaction(tx)  # type: ignore[arg-type]
    tx_hash = signed.hash.to_0x_hex()
    if journal is not None:
        entry = {"hash": tx_hash, "raw": signed.raw_transaction.to_0x_hex(), "nonce": tx["nonce"]}
        _note(journal, intent, entry)
    chain.w3.eth.send_raw_transaction(signed.raw_transaction)
    return tx_hash


def send(chain: Chain, tx: TxParams) -> Any:
    """Sign, send and wait for a transaction (or, under a journal, find the one a previous
    try sent); ``ChainError`` if it reverts, ``ChainUnavailableError`` if the chain does not
    answer or the receipt does not come (a retry will find the transaction by its hash)."""
    journal = _journal.get()
    intent = _intent(chain, tx) if journal is not None else ""
    try:
        noted = _notes(journal).get(intent) if journal is not None else None
        tx_hash = _resume(chain, noted) if noted is not None else None
        if tx_hash is None:
            tx_hash = _sign_and_send(chain, tx, journal, intent)
        receipt = chain.w3.eth.wait_for_transaction_receipt(
            HexBytes(tx_hash), timeout=chain.receipt_timeout_s
        )
    except (*UNANSWERED, TimeExhausted) as exc:
        raise ChainUnavailableError(f"the chain did not answer while sending: {exc}") from exc
    if receipt["status"] != 1:
        raise ChainError(f"transaction {receipt['transactionHash'].hex()} reverted")
    return receipt


def noted_receipt(chain: Chain, tx: TxParams) -> Any | None:
    """The receipt of a transaction with ``tx``'s effect that the open journal says was
    already sent (waiting for it if pending), or None. For a call that would be refused if
    replayed (the refusal is checked before ``send`` is reached)."""
    journal = _journal.get()
    noted = _notes(journal).get(_intent(chain, tx)) if journal is not None else None
    if noted is None:
        return None
    try:
        if _resume(chain, noted) is None:
            return None
        receipt = chain.w3.eth.wait_for_transaction_receipt(
            HexBytes(noted["hash"]), timeout=chain.receipt_timeout_s
        )
    except (*UNANSWERED, TimeExhausted) as exc:
        raise ChainUnavailableError(f"the chain did not answer: {exc}") from exc
    return receipt if receipt["status"] == 1 else None


def deploy(chain: Chain, abi: list[dict], bytecode: str, *args: Any) -> tuple[str, Any]:
    """Deploy a contract; returns (address, receipt)."""
    contract = chain.w3.eth.contract(abi=abi, bytecode=bytecode)
    try:
        receipt = send(
            chain, contract.constructor(*args).build_transaction({"from": chain.account.address})
        )
    except ContractLogicError as exc:
        raise ChainError(f"deployment reverted: {exc}") from exc
    return receipt["contractAddress"], receipt
