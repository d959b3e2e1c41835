"""Running the service: ``prover keys`` (API keys), ``worker``, ``serve``, ``up`` (the
local stack) and ``jobs`` (follow or requeue the jobs of a running service)."""

from __future__ import annotations

import json
import os
import shutil
import signal
from enum import Enum
from typing import Any

import typer
from rich.console import Console

from prover.cli import remote as api
from prover.cli.output import JsonOpt, emit, err, run_action
from prover.config import get_settings
from prover.service.scopes import DEFAULT_SCOPE

app = typer.Typer()
keys_app = typer.Typer(no_args_is_help=True, help="API keys of the service.")
jobs_app = typer.Typer(no_args_is_help=True, help="Jobs of a running service.")


@keys_app.command("create")
def keys_create(
    name: str = typer.Option("default", help="A label for the key."),
    scope: str = typer.Option(
        DEFAULT_SCOPE,
        help="What the key is for: request (a client of the service), prove (a prover or "
        "pool worker: none of the requesters' routes) or admin (key administration over "
        "HTTP, and what a request key does).",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Create an API key (printed once; only its hash is stored)."""

    def action() -> None:
        from prover.service.db import migrate
        from prover.service.keys import create_key

        db = get_settings().sqlalchemy_url()
        migrate(db)
        record = create_key(db, name, scope)
        emit(record, as_json, lambda c: c.print(record["key"]))

    run_action(as_json, action)


@keys_app.command("list")
def keys_list(as_json: bool = JsonOpt) -> None:
    """List API keys (ids, names and scopes; secrets are never stored)."""

    def action() -> None:
        from prover.service.db import migrate
        from prover.service.keys import list_keys

        db = get_settings().sqlalchemy_url()
        migrate(db)
        keys = list_keys(db)
        emit({"keys": keys}, as_json, lambda c: c.print_json(json.dumps(keys)))

    run_action(as_json, action)


@keys_app.command("revoke")
def keys_revoke(key_id: str, as_json: bool = JsonOpt) -> None:
    """Revoke a key by id."""

    def action() -> None:
        from prover.service.keys import revoke_key

        revoke_key(get_settings().sqlalchemy_url(), key_id)
        emit({"revoked": key_id}, as_json, lambda c: c.print(f"revoked {key_id}"))

    run_action(as_json, action)


@app.command()
def worker(
    queues: str = typer.Option("compile,prove,chain", help="Queues to consume."),
    concurrency: int = typer.Option(1, help="Jobs at once (ezkl already uses every core)."),
    name: str = typer.Option("worker@%h", help="Celery node name."),
    pool: str = typer.Option(
        "prefork",
        help="Celery's pool: prefork (jobs: a process each) or threads (the webhooks "
        "queue: deliveries wait on the network).",
    ),
    gpu: int | None = typer.Option(
        None, help="Pin to this GPU (CUDA_VISIBLE_DEVICES) and enable ezkl's GPU prover."
    ),
    loglevel: str = typer.Option("INFO"),
) -> None:
    """Run a Celery worker (foreground) on the given queues."""
    from prover.logs import configure

    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
        # With PROVER_EZKL_CLI (the GPU image's ezkl binary) this sends the prove step to
        # `ezkl prove` (prover/circuits/backend.py): ezkl's Python API never selects the GPU.
        os.environ["ENABLE_ICICLE_GPU"] = "true"
    configure(loglevel, "worker")
    settings = get_settings()
    if settings.worker_metrics_port and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Before prometheus_client loads: the pool's processes write their samples there,
        # and this worker's endpoint (prover.worker.metrics) reads them all.
        samples = settings.data_dir / "metrics" / f"worker-{settings.worker_metrics_port}"
        shutil.rmtree(samples, ignore_errors=True)
        samples.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(samples)
    from prover.worker.app import app as celery_app

    celery_app.worker_main(
        [
            "worker",
            "-Q",
            queues,
            "-c",
            str(concurrency),
            "-n",
            name,
            "-l",
            loglevel,
            "-P",
            pool,
        ]
    )


@app.command()
def serve(loglevel: str = typer.Option("INFO")) -> None:
    """Run the HTTP API (foreground) on PROVER_API_HOST:PROVER_API_PORT."""
    import uvicorn

    from prover.api.app import create_app, server_options
    from prover.logs import configure

    configure(loglevel, "api")
    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=True,
        **server_options(settings),
    )


class StoreOption(str, Enum):
    local = "local"
    s3 = "s3"


@app.command()
def up(
    store: StoreOption = typer.Option(
        StoreOption.local,
        "--store",
        help="Where artifacts go: `local`, the data directory (or PROVER_STORE_URL when "
        "set); `s3`, a local SeaweedFS started and supervised with the rest (data in "
        "PROVER_DATA_DIR/seaweedfs; the data directory is then its cache).",
    ),
) -> None:
    """The local stack in the foreground: Redis (if none answers), anvil (if no chain
    answers), SeaweedFS (with --store s3), PROVER_WORKERS workers and the API; prints
    `ready`, then starts again any part that dies; Ctrl-C (or SIGTERM) stops it."""
    from prover.stack import Stack

    say = lambda line: err.print(line, highlight=False, soft_wrap=True)  # noqa: E731
    stack = Stack(get_settings(), say, "s3" if store is StoreOption.s3 else "local")

    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # also when started in the background (SIGINT ignored)
    failed: Exception | None = None
    try:
        stack.start()
        err.print("[green]ready[/green]")
        stack.watch()
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        err.print(f"[red]error[/red]: {exc}")
        failed = exc
    for signum in (signal.SIGTERM, signal.SIGINT):  # a second Ctrl-C must not cut the stop
        signal.signal(signum, signal.SIG_IGN)
    stack.stop()
    if failed is not None:
        raise typer.Exit(1) from failed


@jobs_app.command("watch")
def jobs_watch(job_id: str, as_json: bool = JsonOpt) -> None:
    """Follow a job of the running service (PROVER_API_URL) until it ends."""

    def action() -> None:
        with api.client() as service:
            job = api.wait_job(service, job_id, not as_json)
        emit(job, as_json, lambda c: print_job(c, job))

    run_action(as_json, action)


@jobs_app.command("show")
def jobs_show(job_id: str, as_json: bool = JsonOpt) -> None:
    """A job's state, phase, progress and error or result."""

    def action() -> None:
        with api.client() as service:
            job = service.job(job_id)
        emit(job, as_json, lambda c: print_job(c, job))

    run_action(as_json, action)


@jobs_app.command("requeue")
def jobs_requeue(
    older_than: float = typer.Option(60.0, help="Only jobs queued for longer (seconds)."),
    as_json: bool = JsonOpt,
) -> None:
    """Send queued jobs to the queue again, e.g. after Redis lost its messages (an operator
    command; a job that is already queued or done is not run twice)."""

    def action() -> None:
        from prover.service.jobs import queued_longer_than
        from prover.worker.app import enqueue

        settings = get_settings()
        found = queued_longer_than(settings.sqlalchemy_url(), older_than)
        for job_id, kind in found:
            enqueue(job_id, kind, settings)
        ids = [job_id for job_id, _ in found]
        emit({"requeued": ids}, as_json, lambda c: c.print(f"requeued {len(ids)} job(s)"))

    run_action(as_json, action)


def print_job(out: Console, job: dict[str, Any]) -> None:
    """A job for people: state, timings, then its error or result."""
    out.print(f"job      {job['job_id']}  {job['kind']}  {job['state']}  ({job['phase']})")
    if job["timings"]:
        out.print("timings  " + "  ".join(f"{k} {v}s" for k, v in job["timings"].items()))
    if job["error"]:
        out.print(f"[red]error[/red]    {job['error']['code']}: {job['error']['message']}")
    if job["result"]:
        out.print(f"result   {json.dumps(job['result'])}")
