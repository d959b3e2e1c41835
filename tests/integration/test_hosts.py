"""The service over hosts that share nothing but the network (tests/helpers/hosts.py):
the API, Redis, PostgreSQL and SeaweedFS on one host, workers on two others, each with
its own data directory. Everything goes through HTTP. Skips, saying why, where network
namespaces cannot be made (not root)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from helpers.hosts import METRICS_PORT, Hosts, running_hosts
from helpers.models import calibration_data, make_mlp
from helpers.stack import compile_model, overlapped, poll
from prover.service.db import session_scope
from prover.service.tables import Job, Proof
from prover.stack import wait_until

pytestmark = pytest.mark.slow

INPUT = [[0.5, -1.25, 0.75, 2.0]]


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    with running_hosts(tmp_path_factory.mktemp("hosts")) as cluster:
        yield cluster


@pytest.fixture
def workers(hosts: Hosts) -> Iterator[Hosts]:
    """Both worker hosts serving compile and prove; stopped after the test."""
    for name in ("h1", "h2"):
        hosts.start_worker(name)
    hosts.wait_workers(2)
    yield hosts
    for name in ("h1", "h2"):
        if name in hosts.processes:
            hosts.stop_worker(name)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mlp(tmp_path_factory.mktemp("hosts-model") / "mlp.onnx")


def _rows(hosts: Hosts, proof_id: str) -> tuple[int, list[str]]:
    """(proof rows, the kinds of its job rows) recorded for one proof, read in the
    database: nothing recorded twice."""
    with session_scope(hosts.db_url) as session:
        proofs = session.scalar(select(func.count()).where(Proof.id == proof_id)) or 0
        kinds = session.scalars(select(Job.kind).where(Job.subject_id == proof_id)).all()
    return proofs, sorted(kinds)


def test_compiled_on_one_host_and_proven_on_the_other(hosts: Hosts, model: Path) -> None:
    hosts.start_worker("h1", queues="compile")
    hosts.start_worker("h2", queues="prove")
    try:
        hosts.wait_workers(2)
        key = hosts.key("two-hosts")
        with hosts.connect(key) as api:
            accepted = compile_model(api, model, calibration_data())
            circuit_id = accepted["circuit_id"]
            assert api.job(accepted["job_id"])["worker"] == "h1@hosts"
            h1, h2 = hosts.host("h1").data_dir, hosts.host("h2").data_dir
            assert (h1 / "circuits" / circuit_id).is_dir()
            assert not (h2 / "circuits").exists()  # h2 has never seen it

            asked = api.request_proof(circuit_id, INPUT)
            job = api.wait(asked["job_id"], timeout=300)
            assert job["worker"] == "h2@hosts" and job["attempts"] == 1, job
            # A cache miss on h2: fetched from the store, digests checked.
            assert (h2 / "circuits" / circuit_id / ".manifest.json").is_file()
            assert not (h1 / "proofs").exists()
            assert api.verify(asked["proof_id"])["valid"] is True
            assert api.proof(asked["proof_id"])["outputs"]
        assert _rows(hosts, asked["proof_id"]) == (1, ["prove"])
        assert hosts.stored("proofs", asked["proof_id"])
        _pool_is_reported_by_host(hosts)
    finally:
        hosts.stop_worker("h1")
        hosts.stop_worker("h2")


def _pool_is_reported_by_host(hosts: Hosts) -> None:
    """/health lists each worker under its host with its queues and cache; every worker's
    own metrics endpoint is listed for Prometheus and answers with its host's numbers."""
    h1, h2 = hosts.host("h1").address, hosts.host("h2").address

    def described() -> dict[str, dict[str, Any]]:
        report = hosts.health()
        return {h["host"]: h["workers"][0] for h in report.get("hosts", [])}

    # h2's cache: the circuit it fetched and the proof it made (reported each lease period).
    wait_until(lambda: described().get(h2, {}).get("cache", {}).get("entries", 0) >= 2, 30, "h2")
    workers = described()
    assert set(workers) == {h1, h2}
    assert workers[h1]["queues"] == ["compile"] and workers[h2]["queues"] == ["prove"]
    assert all(w["answering"] and w["cache"]["shared"] for w in workers.values())
    assert workers[h2]["cache"]["bytes"] > 0 and workers[h2]["memory_bytes"] > 0

    targets = httpx.get(f"{hosts.url}/metrics/targets", timeout=10).json()
    assert sorted(t["targets"][0] for t in targets) == [
        f"{h1}:{METRICS_PORT}",
        f"{h2}:{METRICS_PORT}",
    ]
    assert {t["labels"]["worker"] for t in targets} == {"h1@hosts", "h2@hosts"}
    scraped = httpx.get(f"http://{h2}:{METRICS_PORT}/metrics", timeout=10).text
    # The cache miss and the proof, counted in the pool process; the cache, at scrape time.
    assert _sample(scraped, "prover_store_fetches_total", collection="circuits") >= 1
    assert _sample(scraped, "prover_job_seconds_count", kind="prove", state="succeeded") == 1
    assert _sample(scraped, "prover_cache_bytes") > 0


def _sample(exposition: str, name: str, **labels: str) -> float:
    """The value of the sample ``name`` whose labels include ``labels`` (0 when absent)."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return 0.0


def _deep_mlp(path: Path) -> Path:
    """A 4-16-16-2 ReLU MLP: three layers, so two segments each hold real work."""
    import torch

    from prover.circuits.export import export_onnx

    torch.manual_seed(3)
    layers = [torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU()]
    return export_onnx(
        torch.nn.Sequential(*layers, torch.nn.Linear(16, 2)), torch.zeros(1, 4), path
    )


def test_segments_are_proven_on_both_hosts_at_once(
    workers: Hosts, tmp_path_factory: pytest.TempPathFactory
) -> None:
    hosts = workers
    model = _deep_mlp(tmp_path_factory.mktemp("hosts-deep") / "deep.onnx")
    key = hosts.key("segments")
    with hosts.connect(key) as api:
        circuit_id = compile_model(api, model, calibration_data(8), segments=2)["circuit_id"]
        assert len(api.circuit(circuit_id)["record"]["segments"]) == 2
        asked = api.request_proof(circuit_id, INPUT)
        parent = api.wait(asked["job_id"], timeout=600)
        with hosts.http(key) as client:
            listed = client.get("/v1/jobs", params={"limit": 100}).json()["items"]
        children = [j for j in listed if j.get("parent_id") == parent["job_id"]]
        assert sorted(j["kind"] for j in children) == ["prove_segment"] * 2, children
        assert {j["worker"] for j in children} == {"h1@hosts", "h2@hosts"}, children
        assert overlapped(children), children
        assert all(j["attempts"] == 1 for j in [parent, *children])
        proof = api.proof(asked["proof_id"])
        assert [s["index"] for s in proof["segments"]] == [0, 1]
        assert api.verify(asked["proof_id"])["valid"] is True
    kinds = ["prove", "prove_segment", "prove_segment"]
    assert _rows(hosts, asked["proof_id"]) == (1, kinds)


@pytest.fixture(scope="module")
def slow_circuit(hosts: Hosts, model: Path) -> tuple[str, str]:
    """(api key, circuit id) of the MLP under ezkl's default settings: a 2^15-row circuit,
    seconds per proof, long enough to interrupt."""
    key = hosts.key("slow")
    hosts.start_worker("h1", queues="compile")
    try:
        hosts.wait_workers(1)
        with hosts.connect(key) as api:
            accepted = compile_model(api, model, calibration_data(), strategy="ezkl-default")
    finally:
        hosts.stop_worker("h1")
    return key, accepted["circuit_id"]


def test_a_host_cut_off_mid_proof_is_taken_over_by_the_other(
    slow_circuit: tuple[str, str], workers: Hosts
) -> None:
    hosts = workers
    key, circuit_id = slow_circuit
    with hosts.connect(key) as api:
        asked = api.request_proof(circuit_id, [[1.0, 2.0, 3.0, 4.0]])

        def proving() -> dict | None:
            job = api.job(asked["job_id"])
            assert job["state"] != "succeeded", "the proof ended before its host was cut off"
            return job if job["phase"] == "proving" else None

        victim = poll(proving, 180, "the proof's proving phase")["worker"].split("@")[0]
        other = "h2" if victim == "h1" else "h1"
        started = time.monotonic()
        hosts.host(victim).set_link(up=False)
        try:
            final = api.wait(asked["job_id"], timeout=300)
            took = time.monotonic() - started
            assert final["worker"] == f"{other}@hosts" and final["attempts"] == 2, final
        finally:
            hosts.host(victim).set_link(up=True)
        # Back on the network, the cut-off host ends its proof, finds its lease taken
        # over and records nothing.
        fenced = f"job {asked['job_id']} finished after its lease was taken over; not recorded"
        poll(lambda: fenced in hosts.log(victim), 180, f"{victim} giving its proof up", every=1)
        assert api.job(asked["job_id"]) == final
        assert api.verify(asked["proof_id"])["valid"] is True
    assert _rows(hosts, asked["proof_id"]) == (1, ["prove"])
    assert hosts.stored("proofs", asked["proof_id"])
    assert took < 120, f"the takeover took {took:.0f} s"


def test_the_store_away_mid_job_is_a_transient_fault(
    slow_circuit: tuple[str, str], workers: Hosts
) -> None:
    hosts = workers
    key, circuit_id = slow_circuit
    with hosts.connect(key) as api:
        asked = api.request_proof(circuit_id, [[-1.0, 0.5, 2.5, -3.0]])

        def proving() -> dict | None:
            job = api.job(asked["job_id"])
            assert job["state"] != "succeeded", "the proof ended before the store went away"
            return job if job["phase"] == "proving" else None

        poll(proving, 180, "the proof's proving phase")
        hosts.seaweed.stop()
        try:

            def retrying() -> bool:
                job = api.job(asked["job_id"])
                assert job["state"] in ("queued", "running"), job
                error = job["error"] or {}
                return error.get("code") == "store_unavailable" and error.get("retries", 0) >= 2

            poll(retrying, 120, "two retries while the store is away", every=0.2)
        finally:
            hosts.seaweed.start()
        final = api.wait(asked["job_id"], timeout=300)
        assert final["attempts"] == 1 and final["error"] is None and final["retries"] >= 2, final
        assert api.verify(asked["proof_id"])["valid"] is True
    assert _rows(hosts, asked["proof_id"]) == (1, ["prove"])
    assert hosts.stored("proofs", asked["proof_id"])
