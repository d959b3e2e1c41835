"""Thin, timed wrappers around ezkl's setup, prove and verify on files."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import ezkl


def setup_keys(
    compiled: Path, srs: Path, out_dir: Path, uncompressed_selectors: bool = False
) -> tuple[Path, Path, float]:
    """Proving and verifying keys for a compiled circuit; returns (vk, pk, seconds).

    ezkl's reusable EVM verifier needs keys made with uncompressed selectors.
    """
    vk, pk = out_dir / "vk.key", out_dir / "pk.key"
    started = time.perf_counter()
    ezkl.setup(str(compiled), str(vk), str(pk), str(srs), None, uncompressed_selectors)
    return vk, pk, time.perf_counter() - started


def prove_witness(
    compiled: Path, pk: Path, witness: Path, proof: Path, srs: Path, polycommit: bool
) -> float:
    """Write a proof for a witness; returns seconds spent proving."""
    started = time.perf_counter()
    cli = gpu_prove_cli()
    if cli is None:
        ezkl.prove(str(witness), str(compiled), str(pk), str(proof), str(srs))
    else:
        _prove_with_cli(cli, compiled, pk, witness, proof, srs)
    if polycommit:
        # The proof carries KZG commitments to the committed tensors; ezkl swaps them in.
        ezkl.swap_proof_commitments(str(proof), str(witness))
    return time.perf_counter() - started


def gpu_prove_cli() -> str | None:
    """The GPU build of the `ezkl` binary, on a GPU worker only; None: the Python binding.

    ezkl's Python `prove` never selects ICICLE's CUDA device (only the binary's
    `execute::run` does), so a GPU worker proves through the binary: the GPU image sets
    PROVER_EZKL_CLI, `prover worker --gpu N` sets ENABLE_ICICLE_GPU. Both are needed.
    """
    cli = os.environ.get("PROVER_EZKL_CLI")
    return cli if cli and os.environ.get("ENABLE_ICICLE_GPU") else None


def _prove_with_cli(
    cli: str, compiled: Path, pk: Path, witness: Path, proof: Path, srs: Path
) -> None:
    """`ezkl prove`, as the Python binding calls it (check mode unsafe), into `proof`."""
    args = [
        cli, "prove", "--witness", str(witness), "--compiled-circuit", str(compiled),
        "--pk-path", str(pk), "--proof-path", str(proof), "--srs-path", str(srs),
        "--check-mode", "unsafe",
    ]  # fmt: skip
    done = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip()[-2000:]
        raise RuntimeError(f"Failed to run prove: ezkl exited {done.returncode}: {tail}")


def verify_files(proof: Path, settings: Path, vk: Path, srs: Path) -> tuple[bool, str | None]:
    """(valid, reason): ezkl raises on malformed or unsatisfied proofs; that is a rejection."""
    try:
        ok = bool(ezkl.verify(str(proof), str(settings), str(vk), str(srs), False))
    except Exception as exc:
        return False, str(exc).strip().removeprefix("Failed to run verify: ") or "rejected"
    return ok, None if ok else "verification returned false"
