"""Content-addressed artifact store: one directory per model, circuit and proof.

Every entry is built in a private staging directory and renamed into place in one
step, so a reader never sees a half-written artifact and a crash leaves nothing behind.

With an object store configured (``PROVER_STORE_URL``) the object store holds every entry
for all hosts and the local directory is this host's cache of it: an entry is uploaded
before it appears locally, fetched (digests checked) before a reader sees it, and evicted
least recently used past ``PROVER_CACHE_BYTES``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from prover.errors import ConflictError, NotFoundError, StoreIntegrityError
from prover.metrics import CACHE_EVICTIONS, STORE_FETCH_SECONDS, STORE_FETCHED_BYTES, STORE_FETCHES

if TYPE_CHECKING:
    from prover.config import Settings
    from prover.objects import ObjectStore

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
    # A composite proof's work in progress (proving.composite): its staged witnesses and
    # its segments' proofs, until the composite is published.
    "segment-work",
    # A request opened on the proof market (service.market), by its job's id.
    "market",
]
RECORD = "record.json"
# Where a cached entry keeps its manifest (files, sizes, sha256; the upload they came from).
# Its mtime is the entry's last use, which eviction orders by.
MANIFEST = ".manifest.json"
# Collections whose records ``save_record`` replaces (a redeployed contract, a round proven
# again): with an object store these are always read from it, never from the cache.
MUTABLE: frozenset[str] = frozenset({"deployments", "rounds"})
UPDATE_ATTEMPTS = 100


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


def _manifest_of(directory: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file of a staged entry but its record (keyed by path)."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != RECORD)
    return {
        str(p.relative_to(directory)): {"sha256": sha256_file(p), "size": p.stat().st_size}
        for p in files
    }


def _dir_bytes(directory: Path) -> int:
    """Bytes under ``directory``; files another process removes meanwhile count nothing."""
    total = 0
    for folder, _dirs, files in os.walk(directory):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(folder, name)).st_size
    return total


class ArtifactStore:
    """Directory layout ``<root>/<collection>/<id>/`` with a ``record.json`` in each entry;
    with ``remote``, the same layout in an object store and the directory as its cache."""

    def __init__(
        self, root: Path, remote: ObjectStore | None = None, cache_bytes: int | None = None
    ) -> None:
        self.root = Path(root)
        self._staging = self.root / ".staging"
        self.remote = remote
        self.cache_bytes = cache_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> ArtifactStore:
        """The store these settings name: the data directory, and the object store of
        ``store_url`` when set (imported only then: boto3 is slow to load)."""
        if settings.store_url is None:
            return cls(settings.data_dir)
        remote = _object_store(settings.store_url, settings.store_part_bytes)
        return cls(settings.data_dir, remote, settings.cache_bytes)

    def path(self, collection: Collection, entry_id: str) -> Path:
        """The entry's directory on this host, fetched first from the object store when it
        is not cached (every file checked), and marked as just used."""
        local = self.root / collection / entry_id
        if self.remote is None:
            return local
        if not (local / RECORD).is_file():
            if not self.remote.exists(self._key(collection, entry_id, RECORD)):
                return local
            self._fetch(collection, entry_id, local)
            self._evict(keep=local)
        with contextlib.suppress(FileNotFoundError):
            os.utime(local / MANIFEST)
        return local

    def exists(self, collection: Collection, entry_id: str) -> bool:
        if (self.root / collection / entry_id / RECORD).is_file():
            return True
        return self.remote is not None and self.remote.exists(
            self._key(collection, entry_id, RECORD)
        )

    @contextmanager
    def create(self, collection: Collection, entry_id: str) -> Iterator[Path]:
        """Yield a staging directory that becomes ``<collection>/<entry_id>`` if the block
        succeeds.

        The block must write ``record.json`` last. If another writer published the same
        id first, its entry wins and this one is discarded (ids are content digests, so
        both describe the same thing). With an object store the entry is uploaded before
        it appears locally, so no host ever caches what others cannot fetch.
        """
        self._staging.mkdir(parents=True, exist_ok=True)
        staging = Path(self._staging / f"{collection}-{entry_id[:16]}-{uuid.uuid4().hex}")
        staging.mkdir()
        try:
            yield staging
            if not (staging / RECORD).is_file():
                raise RuntimeError(f"staged {collection} entry {entry_id} has no {RECORD}")
            if self.remote is not None and not self._publish(collection, entry_id, staging):
                return
            self._place(staging, self.root / collection / entry_id)
            if self.remote is not None:
                self._evict(keep=self.root / collection / entry_id)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _place(self, staging: Path, final: Path) -> None:
        """Rename a complete entry into place; an entry already there wins."""
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging, final)
        except OSError:
            if not (final / RECORD).is_file():
                raise

    def discard(self, collection: Collection, entry_id: str) -> None:
        """Remove an entry everywhere: from the object store (every object of it) and this
        host's cache. Only for entries no reader still needs (a composite's used work)."""
        if self.remote is not None:
            self.remote.delete_under(self.remote.key(collection, entry_id))
        local = self.root / collection / entry_id
        if local.exists():
            self._remove(local)

    def sweep_staging(self, older_than_s: float) -> int:
        """Remove staging directories left by killed writers (older than any live job
        could be); returns how many were removed."""
        return remove_stale(self._staging, older_than_s)

    def srs_path(self, circuit: dict[str, Any]) -> Path:
        """The SRS file of a circuit record (development SRS paths are store-relative; with
        an object store, the one the circuit was set up with, fetched by its digest)."""
        path = Path(circuit["srs"]["path"])
        if path.is_absolute():
            return path
        if self.remote is None:
            return self.root / path
        return self._shared_srs(self.root / path, circuit["srs"]["digest"])

    def read_record(self, collection: Collection, entry_id: str) -> dict[str, Any]:
        return self._record(collection, self.resolve(collection, entry_id))

    def _record(self, collection: Collection, entry_id: str) -> dict[str, Any]:
        """A record by full id: from the cache when it holds the entry and the record
        cannot change, else from the object store (the one source of truth)."""
        local = self.root / collection / entry_id / RECORD
        if self.remote is not None and (collection in MUTABLE or not local.is_file()):
            blob = self.remote.read(self._key(collection, entry_id, RECORD))
            if blob is None:
                raise NotFoundError(f"no {collection[:-1]} with id {entry_id!r}", id=entry_id)
            return dict(json.loads(blob.data))
        return dict(json.loads(local.read_text()))

    def save_record(self, collection: Collection, entry_id: str, record: dict[str, Any]) -> None:
        """Publish an entry that holds only a record, or atomically replace its record."""
        if self.exists(collection, entry_id):
            self.update_record(collection, entry_id, lambda _old: record)
            return
        with self.create(collection, entry_id) as out:
            (out / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True))

    def update_record(
        self,
        collection: Collection,
        entry_id: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        """Replace a record with ``change(current)``, compare-and-swap: a writer that raced
        another reads again and retries, so no update is lost (on one host a file lock;
        with an object store, If-Match on the record's ETag). Returns the new record."""
        if self.remote is None:
            return self._update_local(collection, entry_id, change)
        key = self._key(collection, entry_id, RECORD)
        for _ in range(UPDATE_ATTEMPTS):
            blob = self.remote.read(key)
            if blob is None:
                raise NotFoundError(f"no {collection[:-1]} with id {entry_id!r}", id=entry_id)
            new = change(json.loads(blob.data))
            if self.remote.write(key, _record_bytes(new), blob.etag, blob.metadata):
                self._refresh_cached(collection, entry_id, new)
                return new
        raise ConflictError(f"{collection[:-1]} {entry_id[:12]} kept changing under an update")

    def _update_local(
        self,
        collection: Collection,
        entry_id: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        """Read-modify-write under an exclusive lock (every process of this host)."""
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{collection}-{entry_id}", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            new = change(self.read_record(collection, entry_id))
            write_json_atomic(self.root / collection / entry_id / RECORD, new)
        return new

    def _refresh_cached(
        self, collection: Collection, entry_id: str, record: dict[str, Any]
    ) -> None:
        """Keep a cached copy of a replaced record current (read only for immutable ones)."""
        local = self.root / collection / entry_id / RECORD
        if local.is_file():
            write_json_atomic(local, record)

    def resolve(self, collection: Collection, prefix: str) -> str:
        """Full id for an id or an unambiguous prefix of at least 8 characters."""
        if self.exists(collection, prefix):
            return prefix
        matches = self._ids(collection, prefix) if len(prefix) >= 8 else []
        if len(matches) == 1 and self.exists(collection, matches[0]):
            return matches[0]
        what = collection[:-1]
        if len(matches) > 1:
            raise NotFoundError(f"{what} id prefix {prefix!r} is ambiguous; give more characters")
        raise NotFoundError(f"no {what} with id {prefix!r} in {self.where}", id=prefix)

    @property
    def where(self) -> str:
        return self.remote.url if self.remote is not None else str(self.root)

    def _ids(self, collection: Collection, prefix: str = "") -> list[str]:
        """Ids in the collection starting with ``prefix`` (cached and, with an object
        store, stored there)."""
        base = self.root / collection
        found = (
            {p.name for p in base.iterdir() if p.name.startswith(prefix)}
            if base.is_dir()
            else set()
        )
        if self.remote is not None:
            found |= set(self.remote.children(self.remote.key(collection), prefix))
        return sorted(found)

    def list_records(self, collection: Collection) -> list[dict[str, Any]]:
        if self.remote is None:
            base = self.root / collection
            records = [json.loads(p.read_text()) for p in base.glob(f"*/{RECORD}")]
        else:
            records = []
            for entry_id in self._ids(collection):
                with contextlib.suppress(NotFoundError):
                    records.append(self._record(collection, entry_id))
        return sorted(records, key=lambda r: r.get("created_at", ""))

    # The object store: publish, fetch, evict.

    def _key(self, collection: str, entry_id: str, name: str) -> str:
        assert self.remote is not None
        return self.remote.key(collection, entry_id, name)

    def _publish(self, collection: Collection, entry_id: str, staging: Path) -> bool:
        """Upload a staged entry: its files and manifest under a private upload folder,
        then its record (naming that folder) only if there is none; False when another
        writer's entry was there first (its upload stays, this one is removed)."""
        assert self.remote is not None
        record_key = self._key(collection, entry_id, RECORD)
        if self.remote.exists(record_key):
            return False
        upload = uuid.uuid4().hex
        manifest = _manifest_of(staging)
        for name in manifest:
            self.remote.upload(staging / name, self._key(collection, entry_id, f"{upload}/{name}"))
        body = json.dumps({"upload": upload, "files": manifest}, sort_keys=True).encode()
        self.remote.write(self._key(collection, entry_id, f"{upload}/manifest.json"), body, None)
        record = (staging / RECORD).read_bytes()
        if collection == "circuits":
            self._publish_srs(json.loads(record))
        if not self.remote.write(record_key, record, None, {"upload": upload}):
            self.remote.delete_under(self._key(collection, entry_id, upload))
            return False
        (staging / MANIFEST).write_bytes(body)
        return True

    def _fetch(self, collection: Collection, entry_id: str, final: Path) -> None:
        """Download an entry into staging, check every file against its manifest, then
        rename it into place: a reader never sees a half-fetched or tampered entry."""
        assert self.remote is not None
        started = time.monotonic()
        blob = self.remote.read(self._key(collection, entry_id, RECORD))
        if blob is None:
            raise NotFoundError(f"no {collection[:-1]} with id {entry_id!r}", id=entry_id)
        upload = blob.metadata.get("upload", "")
        manifest = self.remote.read(self._key(collection, entry_id, f"{upload}/manifest.json"))
        if manifest is None:
            raise StoreIntegrityError(f"{collection[:-1]} {entry_id[:12]} has no manifest")
        staging = self._staging / f"fetch-{collection}-{entry_id[:16]}-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        try:
            for name, want in json.loads(manifest.data)["files"].items():
                key = self._key(collection, entry_id, f"{upload}/{name}")
                self._download_checked(key, staging / name, want)
            (staging / MANIFEST).write_bytes(manifest.data)
            (staging / RECORD).write_bytes(blob.data)
            self._place(staging, final)
            STORE_FETCHES.labels(collection).inc()
            STORE_FETCH_SECONDS.labels(collection).observe(time.monotonic() - started)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _download_checked(self, key: str, dest: Path, want: dict[str, Any]) -> None:
        """Stream an object to ``dest`` and refuse it unless its size and sha256 match."""
        assert self.remote is not None
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.remote.download(key, dest)
        size, digest = dest.stat().st_size, sha256_file(dest)
        STORE_FETCHED_BYTES.inc(size)
        if size != want.get("size", size) or digest != want["sha256"]:
            raise StoreIntegrityError(
                f"object {key} does not match its manifest (sha256 {digest[:16]}, "
                f"{size} bytes; expected {want['sha256'][:16]}, {want.get('size', '?')} bytes): "
                "refused, nothing cached"
            )

    def _publish_srs(self, record: dict[str, Any]) -> None:
        """Upload a circuit's development SRS (random, made on the compiling host) under its
        digest, unless there already: every prover of the circuit needs exactly it."""
        assert self.remote is not None
        srs = record.get("srs")
        if not isinstance(srs, dict) or Path(srs["path"]).is_absolute():
            return
        key = self.remote.key("srs", srs["digest"])
        if not self.remote.exists(key):
            self.remote.upload(self.root / srs["path"], key)

    def _shared_srs(self, local: Path, digest: str) -> Path:
        """This host's copy of the SRS with ``digest``: its own file when that is the one,
        else fetched (checked) from the object store; kept under its digest."""
        assert self.remote is not None
        cached = self.root / "srs" / "by-digest" / f"{digest}.srs"
        if cached.is_file():
            return cached
        cached.parent.mkdir(parents=True, exist_ok=True)
        if local.is_file() and sha256_file(local) == digest:
            with contextlib.suppress(FileExistsError):
                os.link(local, cached)
            return cached
        self._staging.mkdir(parents=True, exist_ok=True)
        staging = self._staging / f"srs-{digest[:16]}-{uuid.uuid4().hex}"
        try:
            self._download_checked(self.remote.key("srs", digest), staging, {"sha256": digest})
            os.replace(staging, cached)
        finally:
            staging.unlink(missing_ok=True)
        return cached

    def cache_usage(self) -> dict[str, Any]:
        """What this host keeps: bytes and entries of its cache of the object store (or,
        without one, of the data directory, which is then the store itself)."""
        folders = [self.root / c for c in get_args(Collection)] + [self.root / "srs"]
        entries = [d for f in folders[:-1] if f.is_dir() for d in f.iterdir()]
        return {
            "bytes": sum(_dir_bytes(f) for f in folders),
            "entries": len(entries),
            "limit_bytes": self.cache_bytes if self.remote is not None else None,
            "shared": self.remote is not None,
        }

    def _evict(self, keep: Path) -> None:
        """Remove the least recently used cached entries until the cache fits in
        ``cache_bytes``; never ``keep`` (the entry being returned) nor entries that exist
        only here (no manifest: made before the object store was configured)."""
        if self.cache_bytes is None:
            return
        entries = [
            d
            for c in get_args(Collection)
            if (self.root / c).is_dir()
            for d in (self.root / c).iterdir()
            if (d / MANIFEST).is_file()
        ]
        sizes = {d: _dir_bytes(d) for d in entries}
        total = sum(sizes.values())
        for entry in sorted(entries, key=lambda d: (d / MANIFEST).stat().st_mtime):
            if total <= self.cache_bytes:
                return
            if entry != keep:
                self._remove(entry)
                CACHE_EVICTIONS.inc()
                total -= sizes[entry]

    def _remove(self, entry: Path) -> None:
        """Rename an entry out of sight first, so no reader sees it half removed."""
        self._staging.mkdir(parents=True, exist_ok=True)
        gone = self._staging / f"evicted-{entry.name[:16]}-{uuid.uuid4().hex}"
        with contextlib.suppress(FileNotFoundError):
            os.rename(entry, gone)
            shutil.rmtree(gone, ignore_errors=True)


@lru_cache
def _object_store(url: str, part_bytes: int) -> ObjectStore:
    """One client per process (boto3's are thread-safe and slow to make), made on first use:
    the API makes a store per request."""
    from prover.objects import ObjectStore

    return ObjectStore(url, part_bytes)


def _record_bytes(record: dict[str, Any]) -> bytes:
    return json.dumps(record, indent=2, sort_keys=True).encode()


def record_type(record: dict[str, Any]) -> str | None:
    """What a record is (``"circuit"``, ``"training_step_circuit"``, ...); records written
    before the field was renamed from ``kind`` to ``type`` still answer."""
    found = record.get("type", record.get("kind"))
    return None if found is None else str(found)
