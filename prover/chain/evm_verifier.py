"""The Solidity verifier of a circuit: rendered by ezkl, compiled by us, cached with it.

A circuit compiled with ``reusable_verifier`` is checked instead by ezkl's reusable
verifier, one contract per chain (its source does not depend on the circuit), given the
circuit's verifying-key artifact (VKA: a list of 32-byte words).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import struct
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import ezkl
from eth_utils import keccak

from prover.chain.solidity import EIP170_LIMIT, compile_sources
from prover.chain.toolchain import SOLC_VERSION
from prover.errors import CircuitError
from prover.store import ArtifactStore, sha256_bytes

VERIFIER_CONTRACT = "Halo2Verifier"
REUSABLE_CONTRACT = "Halo2VerifierReusable"


def _in_private_loop(make_coroutine: Any) -> None:
    """Run an ezkl coroutine on its own event loop (callers may already be inside one)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(lambda: asyncio.run(make_coroutine())).result()


def _render(circuit_dir: Path, srs: Path, out: Path, reusable: bool) -> None:
    """Have ezkl write the verifier source.

    ezkl's ``create_evm_verifier`` writes the file, then tries to download a compiler,
    which fails offline. The file is what we want: we compile it ourselves.
    """

    async def render() -> None:
        await ezkl.create_evm_verifier(
            str(circuit_dir / "vk.key"),
            str(circuit_dir / "settings.json"),
            str(out),
            str(out.with_suffix(".abi")),
            str(srs),
            reusable,
        )

    try:
        _in_private_loop(render)
    except Exception as exc:
        if not (out.is_file() and out.stat().st_size > 0):
            raise CircuitError(f"ezkl could not render the Solidity verifier: {exc}") from exc


def _vka_words(circuit_dir: Path, srs: Path, out: Path) -> list[str]:
    """The circuit's verifying-key artifact as 0x-hex 32-byte words."""

    async def render() -> None:
        await ezkl.create_evm_vka(
            str(circuit_dir / "vk.key"), str(circuit_dir / "settings.json"), str(out), str(srs)
        )

    _in_private_loop(render)
    raw = out.read_bytes()
    (count,) = struct.unpack("<Q", raw[:8])  # bincode: u64 length, then the words
    if len(raw) != 8 + 32 * count:
        raise CircuitError(f"ezkl wrote a verifying-key artifact of unexpected size {len(raw)}")
    return ["0x" + raw[8 + 32 * i : 40 + 32 * i].hex() for i in range(count)]


def verifier_artifact(store: ArtifactStore, circuit_ref: str) -> dict[str, Any]:
    """Compiled verifier of a circuit (abi, bytecode, runtime size, and for a reusable
    verifier the circuit's VKA), built once and cached in the circuit's directory."""
    circuit = store.read_record("circuits", circuit_ref)
    circuit_dir = store.path("circuits", circuit["id"])
    final = circuit_dir / "evm"
    if (final / "verifier.json").is_file():
        return json.loads((final / "verifier.json").read_text())
    reusable = bool(circuit.get("reusable_verifier"))
    srs = store.srs_path(circuit)
    staging = circuit_dir / f".evm-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        source = staging / "Verifier.sol"
        _render(circuit_dir, srs, source, reusable)
        name = REUSABLE_CONTRACT if reusable else VERIFIER_CONTRACT
        compiled = compile_sources({"Verifier.sol": source.read_text()})[name]
        if compiled.runtime_size > EIP170_LIMIT:
            raise CircuitError(
                f"the verifier is {compiled.runtime_size} bytes of code, over the EIP-170 "
                f"limit of {EIP170_LIMIT}, so it cannot be deployed on mainnet-like chains; "
                "compile the model with --reusable-verifier to use ezkl's shared verifier"
            )
        artifact = {
            **compiled.to_dict(),
            "solc": SOLC_VERSION,
            "circuit_id": circuit["id"],
            "reusable": reusable,
            "source_digest": sha256_bytes(source.read_bytes()),
        }
        if reusable:
            words = _vka_words(circuit_dir, srs, staging / "vka.bin")
            artifact["vka"] = words
            artifact["vka_digest"] = (
                "0x" + keccak(b"".join(bytes.fromhex(w[2:]) for w in words)).hex()
            )
        (staging / "verifier.json").write_text(json.dumps(artifact))
        try:
            os.rename(staging, final)
        except OSError:
            if not (final / "verifier.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return json.loads((final / "verifier.json").read_text())
