"""The Solidity verifier of a circuit: rendered by ezkl, compiled by us, cached with it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import ezkl

from prover.chain.solidity import EIP170_LIMIT, compile_sources
from prover.chain.toolchain import SOLC_VERSION
from prover.errors import CircuitError
from prover.store import ArtifactStore

VERIFIER_CONTRACT = "Halo2Verifier"


def _render(circuit_dir: Path, srs: Path, out: Path) -> None:
    """Have ezkl write the verifier source.

    ezkl's ``create_evm_verifier`` is a coroutine; after writing the file it tries to
    download a compiler, which fails offline. The file is what we want: we compile it.
    It runs on a private event loop so that callers inside a running loop can use it.
    """

    async def render() -> None:
        await ezkl.create_evm_verifier(
            str(circuit_dir / "vk.key"),
            str(circuit_dir / "settings.json"),
            str(out),
            str(out.with_suffix(".abi")),
            str(srs),
            False,
        )

    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, render()).result()
    except Exception as exc:
        if not (out.is_file() and out.stat().st_size > 0):
            raise CircuitError(f"ezkl could not render the Solidity verifier: {exc}") from exc


def verifier_artifact(store: ArtifactStore, circuit_ref: str) -> dict[str, Any]:
    """Compiled verifier of a circuit (abi, bytecode, runtime size), built once and cached."""
    circuit = store.read_record("circuits", circuit_ref)
    circuit_dir = store.path("circuits", circuit["id"])
    final = circuit_dir / "evm"
    if (final / "verifier.json").is_file():
        return json.loads((final / "verifier.json").read_text())
    staging = circuit_dir / f".evm-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        source = staging / "Verifier.sol"
        _render(circuit_dir, store.srs_path(circuit), source)
        compiled = compile_sources({"Verifier.sol": source.read_text()})[VERIFIER_CONTRACT]
        if compiled.runtime_size > EIP170_LIMIT:
            raise CircuitError(
                f"the verifier is {compiled.runtime_size} bytes of code, over the EIP-170 "
                f"limit of {EIP170_LIMIT}: it cannot be deployed on mainnet-like chains; "
                "compile the model with fewer inner columns or a smaller circuit"
            )
        artifact = {**compiled.to_dict(), "solc": SOLC_VERSION, "circuit_id": circuit["id"]}
        (staging / "verifier.json").write_text(json.dumps(artifact))
        try:
            os.rename(staging, final)
        except OSError:
            if not (final / "verifier.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return json.loads((final / "verifier.json").read_text())
