"""web3.py access to a chain: a connection with a sending account, deploys and calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError
from web3.types import TxParams

from prover.errors import ChainError, ChainUnavailableError


@dataclass
class Chain:
    w3: Web3
    account: LocalAccount

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


def send(chain: Chain, tx: TxParams) -> Any:
    """Sign, send and wait for a transaction; raises ``ChainError`` if it reverts."""
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
    receipt = chain.w3.eth.wait_for_transaction_receipt(
        chain.w3.eth.send_raw_transaction(signed.raw_transaction), timeout=120
    )
    if receipt["status"] != 1:
        raise ChainError(f"transaction {receipt['transactionHash'].hex()} reverted")
    return receipt


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
