"""Structured reference strings: a user's ceremony file, or a cached development one.

A development SRS is generated locally, so whoever made it knows its secret and could
forge proofs: every artifact built on one is marked ``dev_srs`` and is not for production,
where (``PROVER_ENV=production``) it is refused before any work.
"""

from __future__ import annotations

import contextlib
import os
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import ezkl

from prover.errors import SRSError
from prover.store import sha256_file

_G1_BYTES = 64  # uncompressed BN254 G1 point in halo2's raw params format
_G2_BYTES = 128


@dataclass(frozen=True)
class SRS:
    path: Path
    logrows: int
    dev: bool

    def to_dict(self, data_dir: Path) -> dict:
        """Record form; a development SRS is named relative to the data dir it lives in."""
        path = self.path.relative_to(data_dir) if self.dev else self.path
        return {
            "path": str(path),
            "logrows": self.logrows,
            "dev": self.dev,
            "digest": srs_digest(self.path),
        }


def srs_logrows(path: Path) -> int:
    """The k of a raw halo2 KZG params file (2^k points), checked against the file size."""
    try:
        with open(path, "rb") as f:
            header = f.read(4)
    except OSError as exc:
        raise SRSError(f"cannot read SRS file {str(path)!r}: {exc}") from exc
    if len(header) != 4:
        raise SRSError(f"SRS file {str(path)!r} is truncated")
    (k,) = struct.unpack("<I", header)
    expected = 4 + 2 * (1 << k) * _G1_BYTES + 2 * _G2_BYTES if k < 32 else -1
    if Path(path).stat().st_size != expected:
        raise SRSError(
            f"{str(path)!r} is not a raw halo2 KZG SRS (header says 2^{k} points, size does "
            "not match); supply the ceremony file in ezkl's SRS format"
        )
    return k


def srs_digest(path: Path) -> str:
    """sha256 of an SRS file, cached beside it (SRS files are large and never change)."""
    sidecar = Path(f"{path}.sha256")
    if sidecar.is_file() and sidecar.stat().st_mtime >= Path(path).stat().st_mtime:
        return sidecar.read_text().strip()
    digest = sha256_file(path)
    with contextlib.suppress(OSError):  # a read-only ceremony location: recompute next time
        sidecar.write_text(digest)
    return digest


def refuse_dev_srs() -> NoReturn:
    """Production mode's refusal of a development SRS, naming the setting to use."""
    raise SRSError(
        "production mode (PROVER_ENV=production) refuses a development SRS: whoever generated "
        "it could forge proofs; set PROVER_SRS_PATH to a ceremony SRS file (raw halo2 KZG "
        "params)",
        setting="PROVER_SRS_PATH",
    )


def srs_source(ceremony: Path | None, production: bool = False) -> str:
    """What a circuit's SRS will be: "dev", or the digest of the ceremony file."""
    if ceremony is None:
        if production:
            refuse_dev_srs()
        return "dev"
    if not Path(ceremony).is_file():
        raise SRSError(f"SRS file {str(ceremony)!r} does not exist")
    return srs_digest(Path(ceremony))


def ceremony_srs(path: Path, logrows: int) -> SRS:
    """A user-supplied SRS; one file of 2^k serves every circuit of up to 2^k rows."""
    path = Path(path).resolve()
    if not path.is_file():
        raise SRSError(f"SRS file {str(path)!r} does not exist")
    k = srs_logrows(path)
    if k < logrows:
        raise SRSError(
            f"the SRS at {str(path)!r} has 2^{k} points but this circuit needs 2^{logrows}; "
            "supply a larger ceremony file",
            srs_logrows=k,
            needed=logrows,
        )
    return SRS(path, k, dev=False)


def dev_srs(cache_dir: Path, logrows: int) -> SRS:
    """A development SRS of exactly 2^logrows, generated once and cached per size."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"dev-kzg{logrows}.srs"
    if not path.is_file():
        tmp = cache_dir / f".dev-kzg{logrows}.{uuid.uuid4().hex}.tmp"
        try:
            ezkl.gen_srs(str(tmp), logrows)
            # Publish only if absent: every SRS is random, and circuits already set up
            # with the first one must keep finding exactly that file.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return SRS(path, logrows, dev=True)


def resolve_srs(
    logrows: int, data_dir: Path, ceremony: Path | None, production: bool = False
) -> SRS:
    """The ceremony SRS when one is configured, else the cached development SRS (refused
    in production)."""
    if ceremony is not None:
        return ceremony_srs(ceremony, logrows)
    if production:
        refuse_dev_srs()
    return dev_srs(data_dir / "srs", logrows)
