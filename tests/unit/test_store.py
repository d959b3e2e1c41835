"""Artifact store: content addressing and all-or-nothing entries."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from prover.errors import NotFoundError
from prover.store import ArtifactStore, canonical_digest


def test_failed_entry_leaves_nothing(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    with pytest.raises(RuntimeError, match="boom"), store.create("circuits", "a" * 64) as out:
        (out / "pk.key").write_bytes(b"half")
        raise RuntimeError("boom")
    assert not store.path("circuits", "a" * 64).exists()
    assert list((tmp_path / ".staging").iterdir()) == []


def test_entry_without_record_is_not_published(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    with pytest.raises(RuntimeError, match=r"no record\.json"), store.create("proofs", "b" * 64):
        pass
    assert not store.exists("proofs", "b" * 64)


def test_publish_resolve_and_list(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    for entry_id in ("abcdef0123" + "0" * 54, "abcdef0199" + "0" * 54):
        with store.create("models", entry_id) as out:
            (out / "record.json").write_text(json.dumps({"id": entry_id, "created_at": entry_id}))
    assert store.resolve("models", "abcdef0123") == "abcdef0123" + "0" * 54
    with pytest.raises(NotFoundError, match="ambiguous"):
        store.resolve("models", "abcdef01")
    with pytest.raises(NotFoundError, match="no model"):
        store.read_record("models", "ffffffffff")
    assert len(store.list_records("models")) == 2


def test_second_writer_of_same_id_keeps_first(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    entry_id = "c" * 64
    with store.create("proofs", entry_id) as first:
        (first / "record.json").write_text(json.dumps({"id": entry_id, "n": 1}))
        with store.create("proofs", entry_id) as second:
            (second / "record.json").write_text(json.dumps({"id": entry_id, "n": 2}))
    assert store.read_record("proofs", entry_id)["n"] == 2
    assert list((tmp_path / ".staging").iterdir()) == []


def test_canonical_digest_ignores_key_order() -> None:
    assert canonical_digest({"a": 1, "b": [1, 2]}) == canonical_digest({"b": [1, 2], "a": 1})


def test_sweep_staging_removes_only_old_leftovers(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    old = tmp_path / ".staging" / "proofs-old"
    new = tmp_path / ".staging" / "proofs-new"
    old.mkdir(parents=True)
    new.mkdir()
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert store.sweep_staging(older_than_s=3600) == 1
    assert not old.exists() and new.exists()
