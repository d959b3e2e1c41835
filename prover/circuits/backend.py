"""Thin, timed wrappers around ezkl's setup, prove and verify on files."""

from __future__ import annotations

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
    ezkl.prove(str(witness), str(compiled), str(pk), str(proof), str(srs))
    if polycommit:
        # The proof carries KZG commitments to the committed tensors; ezkl swaps them in.
        ezkl.swap_proof_commitments(str(proof), str(witness))
    return time.perf_counter() - started


def verify_files(proof: Path, settings: Path, vk: Path, srs: Path) -> tuple[bool, str | None]:
    """(valid, reason): ezkl raises on malformed or unsatisfied proofs; that is a rejection."""
    try:
        ok = bool(ezkl.verify(str(proof), str(settings), str(vk), str(srs), False))
    except Exception as exc:
        return False, str(exc).strip().removeprefix("Failed to run verify: ") or "rejected"
    return ok, None if ok else "verification returned false"
