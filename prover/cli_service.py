"""Service commands: ``keys``, ``worker``, ``serve``, ``up``, ``jobs``; and ``--remote``
versions of compile and prove that go through a running service."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from prover.cli import JsonOpt, _emit, _load_data, _run, app, err
from prover.config import get_settings

keys_app = typer.Typer(no_args_is_help=True, help="API keys of the service.")
jobs_app = typer.Typer(no_args_is_help=True, help="Jobs of a running service.")
app.add_typer(keys_app, name="keys")
app.add_typer(jobs_app, name="jobs")


@keys_app.command("create")
def keys_create(
    name: str = typer.Option("default", help="A label for the key."), as_json: bool = JsonOpt
) -> None:
    """Create an API key (printed once; only its hash is stored)."""

    def action() -> None:
        from prover.service.db import migrate
        from prover.service.keys import create_key

        db = get_settings().sqlalchemy_url()
        migrate(db)
        record = create_key(db, name)
        _emit(record, as_json, lambda c: c.print(record["key"]))

    _run(as_json, action)


@keys_app.command("list")
def keys_list(as_json: bool = JsonOpt) -> None:
    """List API keys (ids and names; secrets are never stored)."""

    def action() -> None:
        from prover.service.db import migrate
        from prover.service.keys import list_keys

        db = get_settings().sqlalchemy_url()
        migrate(db)
        keys = list_keys(db)
        _emit({"keys": keys}, as_json, lambda c: c.print_json(json.dumps(keys)))

    _run(as_json, action)


@keys_app.command("revoke")
def keys_revoke(key_id: str, as_json: bool = JsonOpt) -> None:
    """Revoke a key by id."""

    def action() -> None:
        from prover.service.keys import revoke_key

        revoke_key(get_settings().sqlalchemy_url(), key_id)
        _emit({"revoked": key_id}, as_json, lambda c: c.print(f"revoked {key_id}"))

    _run(as_json, action)


@app.command()
def worker(
    queues: str = typer.Option("compile,prove,chain", help="Queues to consume."),
    concurrency: int = typer.Option(1, help="Jobs at once (ezkl already uses every core)."),
    name: str = typer.Option("worker@%h", help="Celery node name."),
    gpu: int | None = typer.Option(
        None, help="Pin to this GPU (CUDA_VISIBLE_DEVICES) and enable ezkl's GPU prover."
    ),
    loglevel: str = typer.Option("INFO"),
) -> None:
    """Run a Celery worker (foreground) on the given queues."""
    from prover.logs import configure

    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
        os.environ["ENABLE_ICICLE_GPU"] = "true"  # honoured by ezkl builds with GPU support
    configure(loglevel, "worker")
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
            "prefork",
        ]
    )


@app.command()
def serve(loglevel: str = typer.Option("INFO")) -> None:
    """Run the HTTP API (foreground) on PROVER_API_HOST:PROVER_API_PORT."""
    import uvicorn

    from prover.api.app import create_app
    from prover.logs import configure

    configure(loglevel, "api")
    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=True,
    )


@app.command()
def up() -> None:
    """The local stack in the foreground: Redis (if none answers), anvil (if no chain
    answers), PROVER_WORKERS workers and the API; prints `ready`; Ctrl-C stops it."""
    from prover.stack import Stack

    stack = Stack(get_settings(), lambda line: err.print(line, highlight=False, soft_wrap=True))

    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # also when started in the background (SIGINT ignored)
    try:
        stack.start()
        err.print("[green]ready[/green]")
        stack.watch()
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        err.print(f"[red]error[/red]: {exc}")
        stack.stop()
        raise typer.Exit(1) from exc
    stack.stop()


def remote_client() -> Any:
    from prover.client import Client

    settings = get_settings()
    return Client(settings.api_url, settings.api_key)


def _watch(client: Any, job_id: str, show: bool) -> dict[str, Any]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    if not show or not err.is_terminal:
        return client.wait(job_id)
    columns = (TextColumn(f"job {job_id[:8]}"), BarColumn(), TextColumn("{task.description}"))
    with Progress(*columns, TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("", total=1.0)
        return client.wait(
            job_id,
            on_progress=lambda j: bar.update(task, completed=j["progress"], description=j["phase"]),
        )


@jobs_app.command("watch")
def jobs_watch(job_id: str, as_json: bool = JsonOpt) -> None:
    """Follow a job of the running service (PROVER_API_URL) until it ends."""

    def action() -> None:
        with remote_client() as client:
            job = _watch(client, job_id, not as_json)
        _emit(job, as_json, lambda c: _print_job(c, job))

    _run(as_json, action)


@jobs_app.command("show")
def jobs_show(job_id: str, as_json: bool = JsonOpt) -> None:
    """A job's state, phase, progress and error or result."""

    def action() -> None:
        with remote_client() as client:
            job = client.job(job_id)
        _emit(job, as_json, lambda c: _print_job(c, job))

    _run(as_json, action)


@jobs_app.command("requeue")
def jobs_requeue(
    older_than: float = typer.Option(60.0, help="Only jobs queued for longer (seconds)."),
    as_json: bool = JsonOpt,
) -> None:
    """Send queued jobs to the queue again, e.g. after Redis lost its messages (an operator
    command; a job that is already queued or done is not run twice)."""

    def action() -> None:
        from prover.service.jobs import waiting
        from prover.worker.app import enqueue

        settings = get_settings()
        found = waiting(settings.sqlalchemy_url(), older_than)
        for job_id, kind in found:
            enqueue(job_id, kind, settings)
        ids = [job_id for job_id, _ in found]
        _emit({"requeued": ids}, as_json, lambda c: c.print(f"requeued {len(ids)} job(s)"))

    _run(as_json, action)


def _print_job(out: Console, job: dict[str, Any]) -> None:
    out.print(f"job      {job['job_id']}  {job['kind']}  {job['state']}  ({job['phase']})")
    if job["timings"]:
        out.print("timings  " + "  ".join(f"{k} {v}s" for k, v in job["timings"].items()))
    if job["error"]:
        out.print(f"[red]error[/red]    {job['error']['code']}: {job['error']['message']}")
    if job["result"]:
        out.print(f"result   {json.dumps(job['result'])}")


def remote_job(submit: Any, as_json: bool) -> dict[str, Any]:
    """Submit a job with ``submit(client)``, wait for it, and return its result."""
    with remote_client() as client:
        accepted = submit(client)
        return _watch(client, accepted["job_id"], not as_json)["result"]


def remote_compile(model: Path, calibration: Path | None, options: dict[str, Any], as_json: bool):
    """compile --remote: submit to the service and wait for the compile job."""
    with remote_client() as client:
        accepted = client.submit_model(model, calibration, **options)
        _watch(client, accepted["job_id"], not as_json)
        return {**client.circuit(accepted["circuit_id"]), "job_id": accepted["job_id"]}


def remote_prove(circuit_id: str, input_path: Path, fresh: bool, as_json: bool):
    """prove --remote: request a proof from the service and wait for it."""
    with remote_client() as client:
        accepted = client.request_proof(circuit_id, _load_data(input_path), fresh)
        _watch(client, accepted["job_id"], not as_json)
        return client.proof(accepted["proof_id"])


def remote_step_circuit(
    graph: Path, sample: dict[str, Any], reusable_verifier: bool, as_json: bool
) -> dict[str, Any]:
    """train compile --remote: upload the step graph, wait for the compile job; returns
    the circuit record with its ``training`` record."""
    with remote_client() as client:
        accepted = client.submit_step_circuit(graph, sample, reusable_verifier)
        _watch(client, accepted["job_id"], not as_json)
        view = client.circuit(accepted["circuit_id"])
        return {**view["record"], "training": view["training"]}


def remote_run(
    circuit_id: str, weights: list[float], batches: list[dict[str, Any]], as_json: bool
) -> dict[str, Any]:
    """train run --remote: start a training run and follow it step by step."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with remote_client() as client:
        run = client.start_run(circuit_id, weights, batches)
        if as_json or not err.is_terminal:
            return client.wait_run(run["run_id"])
        columns = (
            TextColumn(f"run {run['run_id'][:8]}"),
            BarColumn(),
            TextColumn("{task.description}"),
        )
        with Progress(*columns, TimeElapsedColumn(), console=err, transient=True) as bar:
            task = bar.add_task("", total=run["steps_total"])
            return client.wait_run(
                run["run_id"],
                on_progress=lambda r: bar.update(
                    task, completed=r["steps_done"], description=f"{r['steps_done']} steps proven"
                ),
            )
