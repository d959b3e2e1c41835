"""The job state machine and its leases, on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.orm import Session

from helpers.stack import postgres_database
from prover.chain.node import free_port
from prover.config import Settings
from prover.service import jobs
from prover.service.db import engine_for, migrate, session_scope
from prover.service.execution import run_job
from prover.service.kinds import KINDS, JobKind, job_kind
from prover.service.tables import Base, Circuit

COMPILE_ENDS = job_kind("compile").on_end  # the jobs below compile a circuit row


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
        migrate(url)
        yield url
    else:
        with postgres_database() as url:
            migrate(url)
            yield url


def _token(claim: jobs.Claim) -> str:
    assert claim.token is not None, claim
    return claim.token


def _circuit_state(session: Session) -> str:
    circuit = session.get(Circuit, "c" * 64)
    assert circuit is not None
    return circuit.state


def _job(db: str) -> str:
    with session_scope(db) as session:
        job = jobs.new_job(session, "compile", "c" * 64, "owner", {})
        session.add(
            Circuit(
                id="c" * 64, model_id="m", model_name="m.onnx", state="compiling", job_id=job.id
            )
        )
        return job.id


def test_migrations_match_the_schema_and_rerun_cleanly(db: str) -> None:
    migrate(db)  # a second run is a no-op
    with engine_for(db).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_claim_is_exclusive_and_only_the_holder_records(db: str) -> None:
    job_id = _job(db)
    first = jobs.claim(db, job_id, "w1", lease_s=30, max_attempts=3)
    assert first.status == "claimed" and first.attempts == 1
    second = jobs.claim(db, job_id, "w2", lease_s=30, max_attempts=3)
    assert second.status == "busy" and second.retry_in_s > 0
    assert not jobs.succeed(db, job_id, "not-the-token", {}, {}, COMPILE_ENDS)
    assert jobs.report(db, job_id, _token(first), "search", 0.5, {"intake": 0.1})
    assert jobs.get_job(db, job_id)["phase"] == "search"
    assert jobs.succeed(db, job_id, _token(first), {"ok": True}, {"search": 1.0}, COMPILE_ENDS)
    assert not jobs.succeed(db, job_id, _token(first), {"again": True}, {}, COMPILE_ENDS)
    assert jobs.claim(db, job_id, "w2", lease_s=30, max_attempts=3).status == "done"
    view = jobs.get_job(db, job_id)
    assert (view["state"], view["result"], view["progress"]) == ("succeeded", {"ok": True}, 1.0)
    with session_scope(db) as session:
        assert _circuit_state(session) == "ready"


def test_a_lapsed_lease_is_requeued_once_and_taken_over(db: str) -> None:
    job_id = _job(db)
    dead = jobs.claim(db, job_id, "w1", lease_s=0.2, max_attempts=3)
    time.sleep(0.4)
    assert jobs.requeue_lapsed(db) == [(job_id, "compile")]
    assert jobs.requeue_lapsed(db) == []  # a second sweeper finds nothing to do
    alive = jobs.claim(db, job_id, "w2", lease_s=30, max_attempts=3)
    assert alive.status == "claimed" and alive.attempts == 2
    assert not jobs.renew(db, job_id, _token(dead), 30)  # the dead worker's token is void
    assert not jobs.succeed(db, job_id, _token(dead), {}, {}, COMPILE_ENDS)
    assert jobs.succeed(db, job_id, _token(alive), {}, {}, COMPILE_ENDS)


def test_a_job_whose_workers_keep_dying_fails_with_the_reason(db: str, tmp_path: Path) -> None:
    job_id = _job(db)
    for _ in range(2):
        assert jobs.claim(db, job_id, "w", lease_s=0.05, max_attempts=2).status == "claimed"
        time.sleep(0.1)
    settings = Settings(data_dir=tmp_path, database_url=db, job_lease_s=0.05, max_attempts=2)
    assert run_job(job_id, "w", settings).state == "failed"
    assert jobs.claim(db, job_id, "w", lease_s=0.05, max_attempts=2).status == "done"
    view = jobs.get_job(db, job_id)
    assert view["state"] == "failed" and view["error"]["code"] == "worker_lost"
    with session_scope(db) as session:
        assert _circuit_state(session) == "failed"


def test_a_failure_keeps_its_reason_and_released_jobs_go_back_to_the_queue(db: str) -> None:
    job_id = _job(db)
    claim = jobs.claim(db, job_id, "w", lease_s=30, max_attempts=3)
    assert jobs.release(db, job_id, _token(claim))
    assert jobs.get_job(db, job_id)["state"] == "queued"
    claim = jobs.claim(db, job_id, "w", lease_s=30, max_attempts=3)
    error = {"code": "invalid_input", "message": "input 'x' expects 4 values"}
    assert jobs.fail(db, job_id, _token(claim), error, COMPILE_ENDS)
    assert jobs.get_job(db, job_id)["error"] == error


def test_a_key_sees_a_job_only_when_granted(db: str) -> None:
    job_id = _job(db)
    assert jobs.get_job(db, job_id, "owner")["job_id"] == job_id
    with pytest.raises(Exception, match="no job"):
        jobs.get_job(db, job_id, "someone-else")


def test_waiting_lists_only_queued_jobs(db: str) -> None:
    job_id = _job(db)
    assert jobs.queued_longer_than(db, older_than_s=0) == [(job_id, "compile")]
    assert jobs.queued_longer_than(db, older_than_s=3600) == []
    jobs.claim(db, job_id, "w", lease_s=30, max_attempts=3)
    assert jobs.queued_longer_than(db, older_than_s=0) == []


def test_a_chain_outage_waits_with_backoff_without_using_attempts(db: str, tmp_path: Path) -> None:
    with session_scope(db) as session:
        job_id = jobs.new_job(session, "deploy", "c" * 64, "owner", {}).id
    nowhere = f"http://127.0.0.1:{free_port()}"  # no chain answers there
    settings = Settings(
        data_dir=tmp_path, database_url=db, rpc_url=nowhere, max_attempts=2,
        transient_backoff_s=1, transient_backoff_max_s=4,
    )  # fmt: skip
    waits = [run_job(job_id, "w", settings).retry_in_s for _ in range(4)]
    assert waits == [1, 2, 4, 4]  # doubling, capped; four tries past max_attempts
    view = jobs.get_job(db, job_id)
    assert (view["state"], view["attempts"], view["retries"]) == ("queued", 0, 4)
    assert view["error"]["code"] == "chain_unavailable" and view["error"]["transient"]
    assert view["error"]["retries"] == 4 and "retry_at" in view["error"]

    past_deadline = settings.model_copy(update={"transient_deadline_s": 0})
    assert run_job(job_id, "w", past_deadline).state == "failed"
    view = jobs.get_job(db, job_id)
    assert view["state"] == "failed" and view["error"]["code"] == "chain_unavailable"
    assert "PROVER_TRANSIENT_DEADLINE_S" in view["error"]["message"]


def test_database_and_broker_faults_in_a_job_are_retried_not_counted(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job kind whose work meets a real dropped database connection, then a real
    unreachable Redis, then succeeds: two retries, one attempt, no error left."""
    faults = iter(
        [
            lambda: engine_for(f"postgresql+psycopg://x@127.0.0.1:{free_port()}/x").connect(),
            lambda: redis.Redis(port=free_port(), socket_connect_timeout=1).ping(),
        ]
    )

    def flaky(claim: jobs.Claim, *_: object) -> dict:
        fault = next(faults, None)
        if fault is not None:
            fault()
        return {"ok": True}

    flaky_kind = JobKind("flaky", "prove", "circuit", flaky, jobs.nothing_follows)
    monkeypatch.setitem(KINDS, "flaky", flaky_kind)
    with session_scope(db) as session:
        job_id = jobs.new_job(session, "flaky", "c" * 64, "owner", {}).id
    settings = Settings(data_dir=tmp_path, database_url=db, max_attempts=1)
    first = run_job(job_id, "w", settings)
    assert first.state == "queued"
    assert jobs.get_job(db, job_id)["error"]["code"] == "database_unavailable"
    assert run_job(job_id, "w", settings).state == "queued"
    assert jobs.get_job(db, job_id)["error"]["code"] == "broker_unavailable"
    assert run_job(job_id, "w", settings).state == "succeeded"
    view = jobs.get_job(db, job_id)
    assert (view["attempts"], view["retries"], view["error"]) == (1, 2, None)


def test_a_parent_waits_for_its_children_without_using_attempts(db: str) -> None:
    """Fan-out / fan-in: a parent spawns children and goes back to the queue; each child's
    end wakes it; its restarts count no attempt, so it can wait for any number of them."""
    parent_id = _job(db)
    held = jobs.claim(db, parent_id, "w1", lease_s=30, max_attempts=3)
    made = jobs.spawn(db, held, "prove_segment", [{"index": 0}, {"index": 1}])
    assert [k for _, k in made] == ["prove_segment", "prove_segment"]
    assert jobs.postpone(db, parent_id, held.token or "", "segments 0/2", 0.1)
    view = jobs.get_job(db, parent_id)
    assert (view["state"], view["phase"], view["attempts"]) == ("queued", "segments 0/2", 0)

    wake = job_kind("prove_segment").on_end
    for child_id, _ in made:
        child = jobs.claim(db, child_id, "w2", lease_s=30, max_attempts=3)
        settled = jobs.succeed(db, child_id, child.token or "", {}, {}, wake)
        assert settled is not None and settled.follow_ups == [(parent_id, "compile")]
    children = jobs.children(db, parent_id)
    assert [c["params"]["index"] for c in children] == [0, 1]
    assert {c["state"] for c in children} == {"succeeded"}
    assert {c["parent_id"] for c in children} == {parent_id}
    again = jobs.claim(db, parent_id, "w1", lease_s=30, max_attempts=3)
    assert again.status == "claimed" and again.attempts == 1


def test_a_child_spawned_after_the_lease_was_lost_is_not_made(db: str) -> None:
    parent_id = _job(db)
    held = jobs.claim(db, parent_id, "w1", lease_s=30, max_attempts=3)
    assert jobs.postpone(db, parent_id, held.token or "", "waiting", 0.1)
    assert jobs.spawn(db, held, "prove_segment", [{"index": 0}]) == []
    assert jobs.children(db, parent_id) == []
