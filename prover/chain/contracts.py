"""prover's own contracts (``verifier_contracts/``): the circuit registry and the
proven-result contract, compiled once per process and deployed once per chain."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from eth_abi import decode
from eth_typing import ChecksumAddress, HexAddress, HexStr
from eth_utils import keccak
from web3.exceptions import ContractCustomError, ContractLogicError

from prover.chain.client import Chain, send
from prover.chain.deployments import deploy_once, deployed
from prover.chain.solidity import CompiledContract, compile_sources
from prover.chain.toolchain import REPO_ROOT
from prover.errors import ChainError
from prover.store import ArtifactStore


def contracts_dir() -> Path:
    """The Solidity sources: ``verifier_contracts/`` of the checkout, or
    ``PROVER_CONTRACTS_DIR`` (an installed package has no checkout around it)."""
    return Path(os.environ.get("PROVER_CONTRACTS_DIR", REPO_ROOT / "verifier_contracts"))


@lru_cache
def compiled() -> dict[str, CompiledContract]:
    directory = contracts_dir()
    sources = {p.name: p.read_text() for p in sorted(directory.glob("*.sol"))}
    if not sources:
        raise ChainError(
            f"no Solidity sources in {directory}: set PROVER_CONTRACTS_DIR to the "
            "repository's verifier_contracts/ directory"
        )
    return compile_sources(sources, optimizer_runs=200)


def decode_revert(data: str | bytes | None) -> str:
    """Name a custom error from revert data, e.g. ``InvalidProof(0x12..)``."""
    raw = bytes.fromhex(data[2:]) if isinstance(data, str) else (data or b"")
    if len(raw) < 4:
        return "reverted without a reason"
    for contract in compiled().values():
        for item in contract.abi:
            if item["type"] != "error":
                continue
            signature = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
            if keccak(text=signature)[:4] == raw[:4]:
                values = decode([i["type"] for i in item["inputs"]], raw[4:])
                shown = ", ".join(v.hex() if isinstance(v, bytes) else str(v) for v in values)
                return f"{item['name']}({shown})"
    return f"reverted with data 0x{raw.hex()}"


def infrastructure(
    store: ArtifactStore, chain: Chain, deploy_missing: bool = True
) -> dict[str, Any]:
    """The registry and proven-result contracts on this chain, deployed if missing (or,
    with ``deploy_missing`` false, a ``ChainError`` saying to deploy first)."""
    contracts = compiled()
    kind = {
        "registry_address": contracts["ProofRegistry"],
        "results_address": contracts["ProvenResults"],
    }
    record = deploy_once(store, chain, kind) if deploy_missing else deployed(store, chain, kind)
    if record is None:
        raise ChainError(
            f"prover's contracts are not deployed on chain {chain.chain_id}; "
            "run `prover deploy CIRCUIT_ID` first"
        )
    return record


def _checksummed(address: str) -> ChecksumAddress:
    """An address from a deploy receipt, already checksummed (typed as such, not checked:
    web3 refuses any other)."""
    return ChecksumAddress(HexAddress(HexStr(address)))


def contract(chain: Chain, name: str, address: str) -> Any:
    return chain.w3.eth.contract(address=_checksummed(address), abi=compiled()[name].abi)


def vk_digest(circuit_dir: Path) -> bytes:
    return keccak((circuit_dir / "vk.key").read_bytes())


def transact(chain: Chain, call: Any, value: int = 0) -> Any:
    """Send a contract call (with ``value`` wei); a revert becomes a ``ChainError`` naming the
    contract's error."""
    sender = {"from": chain.account.address, "value": value}
    try:
        # Estimated against the pending block, the one the transaction lands in (a reveal
        # is valid only after its commitment's block).
        gas = call.estimate_gas(sender, block_identifier="pending")
        return send(chain, call.build_transaction({**sender, "gas": int(gas * 1.2)}))
    except (ContractCustomError, ContractLogicError) as exc:
        reason = decode_revert(getattr(exc, "data", None))
        raise ChainError(f"{call.fn_name} reverted: {reason}", revert=reason) from exc
