"""What commands read: data files, the artifact store, a chain connection, and the options
that choose them. Each helper imports its module on first use, so that ``prover --help``
does not pay for onnx, ezkl or web3."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from prover.config import get_settings

if TYPE_CHECKING:
    from prover.chain.client import Chain
    from prover.store import ArtifactStore

RpcOpt = typer.Option(None, "--rpc", help="EVM JSON-RPC URL (default PROVER_RPC_URL).")
KeyOpt = typer.Option(None, "--key", help="Sender's private key, hex (default PROVER_PRIVATE_KEY).")


def store() -> ArtifactStore:
    """The artifact store under PROVER_DATA_DIR."""
    from prover.store import ArtifactStore

    return ArtifactStore.from_settings(get_settings())


def load_data(path: Path | None) -> Any:
    """A JSON data file (inputs, calibration), or None when no file was given."""
    from prover.circuits.data import load_json

    return None if path is None else load_json(path)


def connect_chain(rpc: str | None, key: str | None) -> Chain:
    """A chain connection from --rpc/--key, falling back to the configured ones."""
    from prover.chain.client import connect

    settings = get_settings()
    return connect(rpc or settings.rpc_url, key or settings.private_key)
