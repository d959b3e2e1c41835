"""prover's contracts that a chain holds one of (the registry with ProvenResults,
ProvenComposites, the training ledger, the proof market): deployed once per chain and
recorded in the store's ``deployments`` under the contracts' names and the chain id (and
the addresses they are bound to, if any)."""

from __future__ import annotations

from typing import Any

from prover.chain.client import Chain, deploy
from prover.chain.solidity import CompiledContract
from prover.store import ArtifactStore, canonical_digest, now_iso

# One kind: each record field (``ledger_address``...) and its contract, in deploy order.
Kind = dict[str, CompiledContract]


def _entry_id(chain: Chain, kind: Kind, bound: tuple[str, ...]) -> str:
    names = "+".join(contract.name for contract in kind.values())
    entry = {"contracts": names, "chain": chain.chain_id}
    return canonical_digest({**entry, "bound": list(bound)} if bound else entry)


def deployed(
    store: ArtifactStore, chain: Chain, kind: Kind, bound: tuple[str, ...] = ()
) -> dict[str, Any] | None:
    """The record of ``kind`` on this chain (bound to the addresses ``bound``, as
    ``deploy_once`` deployed it) if every recorded address still holds its contract, else
    None (deploys nothing).

    An address holds its contract when its code has the compiled runtime size; any code is
    not enough: an address follows from (deployer, nonce), so on a restarted development
    chain it may hold whatever that nonce deployed since, and a rebuilt contract differs.
    The size stands in for the bytes, which a constructor's immutables (ProvenResults'
    registry) change."""
    entry_id = _entry_id(chain, kind, bound)
    if not store.exists("deployments", entry_id):
        return None
    record = store.read_record("deployments", entry_id)
    intact = all(
        len(chain.w3.eth.get_code(record[field])) == contract.runtime_size
        for field, contract in kind.items()
    )
    return record if intact else None


def deploy_once(
    store: ArtifactStore, chain: Chain, kind: Kind, bound: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``deployed``, or else the whole kind deployed now and recorded. Each constructor
    takes the ``bound`` addresses (contracts of another kind: the market's ProvenResults),
    then the earlier addresses of its kind (ProvenResults the registry's), so one missing
    contract redeploys all of them."""
    record = deployed(store, chain, kind, bound)
    if record is not None:
        return record
    addresses: dict[str, str] = {}
    gas = 0
    for field, contract in kind.items():
        address, receipt = deploy(
            chain, contract.abi, contract.bytecode, *bound, *addresses.values()
        )
        addresses[field] = address
        gas += receipt["gasUsed"]
    record = {
        "id": _entry_id(chain, kind, bound),
        "type": "contracts",
        "chain_id": chain.chain_id,
        **addresses,
        "gas_used": gas,
        "created_at": now_iso(),
    }
    store.save_record("deployments", record["id"], record)
    return record
