"""The artifact store across hosts, on a real S3-compatible object store (SeaweedFS): two
stores with nothing shared but the object store stand for two hosts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.models import calibration_data
from helpers.seaweed import Seaweed, running
from prover.circuits.compiler import CompileOptions, compile_model
from prover.circuits.search import SearchSpace
from prover.config import Settings
from prover.errors import StoreIntegrityError, transient_code
from prover.objects import ObjectStore
from prover.proving.composite import (
    WORK,
    compose,
    prepare_segments,
    prove_segment,
    sweep_work,
    verify_composite,
)
from prover.proving.plans import plan_proof
from prover.proving.proofs import prove_input, verify
from prover.store import ArtifactStore

MB = 1024 * 1024
PART = 5 * MB


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    yield from running(tmp_path_factory)


def host(root: Path, prefix: str, cache_bytes: int | None = None) -> ArtifactStore:
    """A store as one host has it: its own directory, the shared bucket under ``prefix``."""
    return ArtifactStore(root, ObjectStore(f"s3://prover/{prefix}", PART), cache_bytes)


@pytest.fixture
def prefix() -> str:
    """A bucket prefix of the test's own."""
    return uuid.uuid4().hex[:12]


def publish(store: ArtifactStore, entry_id: str, payload: bytes) -> None:
    with store.create("models", entry_id) as out:
        (out / "keys").mkdir()
        (out / "keys" / "blob.bin").write_bytes(payload)
        (out / "record.json").write_text(json.dumps({"id": entry_id, "created_at": entry_id}))


def test_entry_published_on_one_host_is_fetched_on_another(
    seaweed: Seaweed, tmp_path: Path, prefix: str
) -> None:
    a, b = host(tmp_path / "a", prefix), host(tmp_path / "b", prefix)
    entry_id = "ab" * 32
    publish(a, entry_id, b"weights" * 1000)
    assert not (tmp_path / "b" / "models").exists()
    assert b.exists("models", entry_id)
    assert b.resolve("models", entry_id[:10]) == entry_id
    assert [r["id"] for r in b.list_records("models")] == [entry_id]
    fetched = b.path("models", entry_id)
    assert (fetched / "keys" / "blob.bin").read_bytes() == b"weights" * 1000
    manifest = json.loads((fetched / ".manifest.json").read_text())
    assert manifest["files"]["keys/blob.bin"]["size"] == 7000
    assert b.read_record("models", entry_id)["id"] == entry_id


def test_tampered_object_is_refused_and_nothing_cached(
    seaweed: Seaweed, tmp_path: Path, prefix: str
) -> None:
    a, b = host(tmp_path / "a", prefix), host(tmp_path / "b", prefix)
    entry_id = "cd" * 32
    publish(a, entry_id, b"honest bytes")
    client = seaweed.client()
    record = client.head_object(Bucket="prover", Key=f"{prefix}/models/{entry_id}/record.json")
    key = f"{prefix}/models/{entry_id}/{record['Metadata']['upload']}/keys/blob.bin"
    client.put_object(Bucket="prover", Key=key, Body=b"forged bytes")
    with pytest.raises(StoreIntegrityError, match="does not match its manifest"):
        b.path("models", entry_id)
    assert not (tmp_path / "b" / "models" / entry_id).exists()
    assert list((tmp_path / "b" / ".staging").iterdir()) == []


# Run in a child, so that its peak memory is this transfer's alone.
_TRANSFER = """
import resource, sys
from pathlib import Path
from prover.objects import ObjectStore
from prover.store import ArtifactStore
root, prefix, entry_id = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
a = ArtifactStore(root / "a", ObjectStore(f"s3://prover/{prefix}", 5 * 1024 * 1024))
b = ArtifactStore(root / "b", ObjectStore(f"s3://prover/{prefix}", 5 * 1024 * 1024))
a.remote.client.list_buckets()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with a.create("proofs", entry_id) as out:
    with open(out / "big.bin", "wb") as f:
        for i in range(40):
            f.write(bytes([i]) * (1024 * 1024))
    (out / "record.json").write_text("{}")
size = (b.path("proofs", entry_id) / "big.bin").stat().st_size
print(size, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def test_large_file_moves_in_parts_never_whole_in_memory(
    seaweed: Seaweed, tmp_path: Path, prefix: str
) -> None:
    entry_id = "ef" * 32
    done = subprocess.run(
        [sys.executable, "-c", _TRANSFER, str(tmp_path), prefix, entry_id],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    size, grew = (int(v) for v in done.stdout.split())
    assert size == 40 * MB
    # Parts in flight (4 threads of 5 MB) take about 18 MB; the file whole would take 40.
    assert grew < 30 * MB, f"peak memory grew {grew / MB:.1f} MB moving a 40 MB file"
    record = seaweed.client().head_object(
        Bucket="prover", Key=f"{prefix}/proofs/{entry_id}/record.json"
    )
    big = f"{prefix}/proofs/{entry_id}/{record['Metadata']['upload']}/big.bin"
    etag = seaweed.client().head_object(Bucket="prover", Key=big)["ETag"]
    assert etag.strip('"').endswith("-8"), f"{etag}: not a multipart upload of 8 parts"


def test_cache_evicts_least_recently_used(seaweed: Seaweed, tmp_path: Path, prefix: str) -> None:
    a = host(tmp_path / "a", prefix)
    ids = [c * 64 for c in "123"]
    for entry_id in ids:
        publish(a, entry_id, os.urandom(MB))
    b = host(tmp_path / "b", prefix, cache_bytes=int(2.5 * MB))
    cached = tmp_path / "b" / "models"
    for entry_id in [ids[0], ids[1], ids[0]]:  # ids[1] is now the least recently used
        b.path("models", entry_id)
        time.sleep(0.02)
    b.path("models", ids[2])
    assert sorted(p.name for p in cached.iterdir()) == [ids[0], ids[2]]
    tiny = host(tmp_path / "c", prefix, cache_bytes=1)
    assert (tiny.path("models", ids[1]) / "keys" / "blob.bin").is_file()  # the one in use
    tiny.path("models", ids[2])
    assert [p.name for p in (tmp_path / "c" / "models").iterdir()] == [ids[2]]


def test_racing_updates_lose_nothing(seaweed: Seaweed, tmp_path: Path, prefix: str) -> None:
    hosts = [host(tmp_path / "a", prefix), host(tmp_path / "b", prefix)]
    run_id = "9" * 64
    hosts[0].save_record("runs", run_id, {"id": run_id, "seen": []})

    def appended(item: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return lambda r: {**r, "seen": [*r["seen"], item]}

    def add(store: ArtifactStore, tag: str) -> None:
        for n in range(10):
            store.update_record("runs", run_id, appended(f"{tag}{n}"))

    threads = [threading.Thread(target=add, args=(s, f"{i}-")) for i, s in enumerate(hosts * 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen = hosts[1].read_record("runs", run_id)["seen"]
    assert len(seen) == len(set(seen)) == 40


def test_replaced_record_is_read_fresh_on_every_host(
    seaweed: Seaweed, tmp_path: Path, prefix: str
) -> None:
    a, b = host(tmp_path / "a", prefix), host(tmp_path / "b", prefix)
    entry_id = "7" * 64
    a.save_record("deployments", entry_id, {"id": entry_id, "address": "0x1"})
    b.path("deployments", entry_id)  # now cached on b
    a.save_record("deployments", entry_id, {"id": entry_id, "address": "0x2"})
    assert b.read_record("deployments", entry_id)["address"] == "0x2"


def test_store_away_is_transient_and_recovers(
    seaweed: Seaweed, tmp_path: Path, prefix: str
) -> None:
    store = host(tmp_path / "a", prefix)
    entry_id = "5" * 64
    seaweed.stop()
    try:
        with pytest.raises(Exception) as away:
            publish(store, entry_id, b"x")
        assert transient_code(away.value) == "store_unavailable", repr(away.value)
        assert not (tmp_path / "a" / "models" / entry_id).exists()
    finally:
        seaweed.start()
    publish(store, entry_id, b"x")
    assert host(tmp_path / "b", prefix).exists("models", entry_id)


def test_compile_on_one_host_prove_on_another(
    seaweed: Seaweed, tmp_path: Path, prefix: str, mlp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "a", measure_top=1)
    space = SearchSpace(scales=(10,), legs=(3,), inner_cols=(2,))
    options = CompileOptions(space=space)
    a = host(tmp_path / "a", prefix)
    circuit = compile_model(mlp_path, calibration_data(), options, a, settings)
    b = host(tmp_path / "b", prefix)
    proof = prove_input(b, circuit["id"][:12], {"input_data": [[0.5, -1.25, 0.75, 2.0]]})
    assert (tmp_path / "b" / "circuits" / circuit["id"] / ".manifest.json").is_file()
    assert b.srs_path(circuit).parent.name == "by-digest"  # a's SRS, fetched by digest
    assert verify(b, proof["id"])["valid"]
    assert host(tmp_path / "c", prefix).exists("proofs", proof["id"])


def _deep_mlp(path: Path) -> Path:
    """A 4-16-16-2 ReLU MLP: three layers, so two segments each hold real work."""
    import torch

    from prover.circuits.export import export_onnx

    torch.manual_seed(3)
    layers = [torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU()]
    return export_onnx(
        torch.nn.Sequential(*layers, torch.nn.Linear(16, 2)), torch.zeros(1, 4), path
    )


@pytest.mark.slow
def test_composite_proof_split_across_hosts(seaweed: Seaweed, tmp_path: Path, prefix: str) -> None:
    """Host a compiles and witnesses, b proves segment 0 and a segment 1, b composes: the
    work crosses hosts through the object store only, and is removed once composed."""
    from prover.circuits.segment_build import build_segmented
    from prover.circuits.segments import plan_segmented

    settings = Settings(data_dir=tmp_path / "a", measure_top=1)
    space = SearchSpace(scales=(8,), legs=(3,), inner_cols=(2,))
    options = CompileOptions(space=space, measure_top=1)
    a, b = host(tmp_path / "a", prefix), host(tmp_path / "b", prefix)
    model = _deep_mlp(tmp_path / "deep.onnx")
    plan = plan_segmented(model, calibration_data(8), options, settings, segments=2)
    circuit = build_segmented(plan, options, a, settings)
    data = {"input_data": [[0.5, -1.25, 0.75, 2.0]]}
    proof_plan = plan_proof(a, circuit["id"], data)
    proof_id = proof_plan.proof_id
    assert [s["index"] for s in prepare_segments(a, proof_plan)] == [0, 1]
    assert not (tmp_path / "b" / WORK).exists()

    first = prove_segment(b, proof_id, 0)
    assert prove_segment(a, proof_id, 0) == first  # proven on b, found by a: not again
    prove_segment(a, proof_id, 1)
    proof = compose(b, plan_proof(b, circuit["id"], data))
    assert proof["type"] == "composite" and not proof["cached"]
    assert verify_composite(b, proof_id)["valid"]
    assert verify(host(tmp_path / "c", prefix), proof_id)["valid"]

    listed = seaweed.client().list_objects_v2(Bucket="prover", Prefix=f"{prefix}/{WORK}/")
    assert listed["KeyCount"] == 0, "the composed proof's work is left in the object store"
    assert not (tmp_path / "b" / WORK / proof_id).exists()
    assert (tmp_path / "a" / WORK / proof_id).is_dir()  # a's cached copy, until swept
    assert sweep_work(a, older_than_s=3600) == 0
    assert sweep_work(a, older_than_s=0) == 3  # witnesses, segment 1, b's segment 0 fetched
    assert list((tmp_path / "a" / WORK).iterdir()) == []

    # Work never composed (an abandoned request) is swept from the object store by age.
    other = plan_proof(a, circuit["id"], {"input_data": [[-0.3, 0.9, 1.5, -0.2]]})
    prepare_segments(a, other)
    prove_segment(b, other.proof_id, 0)
    assert sweep_work(b, older_than_s=3600) == 0 and a.exists(WORK, other.proof_id)
    assert sweep_work(b, older_than_s=0) == 4  # b's two cached entries, the store's two
    assert not b.exists(WORK, other.proof_id)
    listed = seaweed.client().list_objects_v2(Bucket="prover", Prefix=f"{prefix}/{WORK}/")
    assert listed["KeyCount"] == 0
