"""Well-known values of anvil's development chain, and its clock."""

from __future__ import annotations

from web3.types import RPCEndpoint

from prover.chain.client import Chain

# anvil's second and third development accounts (public, well-known).
OTHER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
THIRD_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"


def latest_timestamp(chain: Chain) -> int:
    return int(chain.w3.eth.get_block("latest")["timestamp"])


def next_block_at(chain: Chain, timestamp: int) -> None:
    """Mine the next block (and estimate against it) at ``timestamp``."""
    chain.w3.provider.make_request(RPCEndpoint("evm_setNextBlockTimestamp"), [timestamp])


def snapshot(chain: Chain) -> str:
    """A snapshot of the node's state, for ``revert``."""
    return str(chain.w3.provider.make_request(RPCEndpoint("evm_snapshot"), [])["result"])


def revert(chain: Chain, snapshot_id: str) -> None:
    chain.w3.provider.make_request(RPCEndpoint("evm_revert"), [snapshot_id])
