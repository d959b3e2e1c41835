"""Content-addressed artifact store: one directory per model, circuit and proof.

Every entry is built in a private staging directory and renamed into place in one
step, so a reader never sees a half-written artifact and a crash leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from prover.errors import NotFoundError

# The record collections, one directory each ("kind" names job kinds, not these).
Collection = Literal[
    "models",
    "circuits",
    "proofs",
    "deployments",
    "training",
    "steps",
    "schedules",
    "runs",
    "rounds",
]
RECORD = "record.json"


def remove_stale(directory: Path, older_than_s: float) -> int:
    """Remove the entries of ``directory`` not touched for ``older_than_s``; how many."""
    if not directory.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    stale = [p for p in directory.iterdir() if p.stat().st_mtime < cutoff]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def canonical_digest(obj: Any) -> str:
    """sha256 of the canonical JSON form of ``obj`` (sorted keys, no spaces)."""
    return sha256_bytes(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())


def now_iso() -> str:
    """UTC timestamp for records."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON next to ``path`` and rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    os.replace(tmp, path)


class ArtifactStore:
    """Directory layout ``<root>/<collection>/<id>/`` with a ``record.json`` in each entry."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._staging = self.root / ".staging"

    def path(self, collection: Collection, entry_id: str) -> Path:
        return self.root / collection / entry_id

    def exists(self, collection: Collection, entry_id: str) -> bool:
        return (self.path(collection, entry_id) / RECORD).is_file()

    @contextmanager
    def create(self, collection: Collection, entry_id: str) -> Iterator[Path]:
        """Yield a staging directory that becomes ``<collection>/<entry_id>`` if the block
        succeeds.

        The block must write ``record.json`` last. If another writer published the same
        id first, its entry wins and this one is discarded (ids are content digests, so
        both describe the same thing).
        """
        self._staging.mkdir(parents=True, exist_ok=True)
        staging = Path(self._staging / f"{collection}-{entry_id[:16]}-{uuid.uuid4().hex}")
        staging.mkdir()
        try:
            yield staging
            if not (staging / RECORD).is_file():
                raise RuntimeError(f"staged {collection} entry {entry_id} has no {RECORD}")
            final = self.path(collection, entry_id)
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, final)
            except OSError:
                if not self.exists(collection, entry_id):
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def sweep_staging(self, older_than_s: float) -> int:
        """Remove staging directories left by killed writers (older than any live job
        could be); returns how many were removed."""
        return remove_stale(self._staging, older_than_s)

    def srs_path(self, circuit: dict[str, Any]) -> Path:
        """The SRS file of a circuit record (development SRS paths are store-relative)."""
        path = Path(circuit["srs"]["path"])
        return path if path.is_absolute() else self.root / path

    def read_record(self, collection: Collection, entry_id: str) -> dict[str, Any]:
        full = self.resolve(collection, entry_id)
        return json.loads((self.path(collection, full) / RECORD).read_text())

    def save_record(self, collection: Collection, entry_id: str, record: dict[str, Any]) -> None:
        """Publish an entry that holds only a record, or atomically replace its record."""
        if self.exists(collection, entry_id):
            write_json_atomic(self.path(collection, entry_id) / RECORD, record)
            return
        with self.create(collection, entry_id) as out:
            (out / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True))

    def resolve(self, collection: Collection, prefix: str) -> str:
        """Full id for an id or an unambiguous prefix of at least 8 characters."""
        if self.exists(collection, prefix):
            return prefix
        base = self.root / collection
        matches = []
        if len(prefix) >= 8 and base.is_dir():
            matches = [p.name for p in base.iterdir() if p.name.startswith(prefix)]
        if len(matches) == 1 and self.exists(collection, matches[0]):
            return matches[0]
        what = collection[:-1]
        if len(matches) > 1:
            raise NotFoundError(f"{what} id prefix {prefix!r} is ambiguous; give more characters")
        raise NotFoundError(f"no {what} with id {prefix!r} in {self.root}", id=prefix)

    def list_records(self, collection: Collection) -> list[dict[str, Any]]:
        base = self.root / collection
        if not base.is_dir():
            return []
        records = [json.loads(p.read_text()) for p in base.glob(f"*/{RECORD}")]
        return sorted(records, key=lambda r: r.get("created_at", ""))


def record_type(record: dict[str, Any]) -> str | None:
    """What a record is (``"circuit"``, ``"training_step_circuit"``, ...); records written
    before the field was renamed from ``kind`` to ``type`` still answer."""
    found = record.get("type", record.get("kind"))
    return None if found is None else str(found)
