"""Command line: ``prover compile | prove | verify | proof | models | circuits | deploy | submit``.

With ``--json`` every command prints exactly one JSON object on stdout (an ``error``
object on failure, with a non-zero exit). Anything else that would reach stdout is sent
to stderr, where progress bars go too. ezkl logs through Python logging (its calibration
reports are warnings); PROVER_LOG_LEVEL sets how much of it is shown (default ERROR).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from prover.config import Settings, get_settings
from prover.errors import ProverError

if TYPE_CHECKING:  # the CLI imports ezkl, torch and web3 only for the commands that use them
    from prover.chain.client import Chain
    from prover.store import ArtifactStore

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
proof_app = typer.Typer(no_args_is_help=True, help="Inspect and export proofs.")
models_app = typer.Typer(no_args_is_help=True, help="Models in the store.")
circuits_app = typer.Typer(no_args_is_help=True, help="Circuits in the store.")
app.add_typer(proof_app, name="proof")
app.add_typer(models_app, name="models")
app.add_typer(circuits_app, name="circuits")

err = Console(stderr=True)
_stdout: TextIO = sys.stdout  # replaced in main() by the real stdout once fd 1 is redirected

JsonOpt = typer.Option(False, "--json", help="Print exactly one JSON object on stdout.")
RemoteOpt = typer.Option(
    False, help="Go through the running service at PROVER_API_URL (key: PROVER_API_KEY)."
)


def _store() -> ArtifactStore:
    from prover.store import ArtifactStore

    return ArtifactStore(get_settings().data_dir)


def _emit(obj: dict[str, Any], as_json: bool, human: Callable[[Console], None]) -> None:
    if as_json:
        _stdout.write(json.dumps(obj) + "\n")
        _stdout.flush()
    else:
        human(Console(file=_stdout, soft_wrap=True))


@contextmanager
def _progress(enabled: bool, title: str) -> Iterator[Callable[[str, float], None]]:
    """A progress bar on stderr; a no-op callback in --json mode."""
    if not enabled:
        yield lambda _m, _f: None
        return
    columns = (TextColumn(title), BarColumn(), TextColumn("{task.description}"))
    with Progress(*columns, TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("", total=1.0)
        yield lambda message, fraction: bar.update(task, completed=fraction, description=message)


def _fail(as_json: bool, error: dict[str, Any], status: int) -> None:
    if as_json:
        _stdout.write(json.dumps({"error": error}) + "\n")
        _stdout.flush()
    else:
        err.print(f"[red]error[/red] ({error['code']}): {error['message']}")
    raise typer.Exit(status)


def _run(as_json: bool, action: Callable[[], None]) -> None:
    """Run a command body, turning errors into one JSON error object or a stderr line.

    A user's error exits 1; an unexpected one exits 2 with its traceback on stderr.
    """
    try:
        action()
    except ProverError as exc:
        _fail(as_json, exc.to_dict(), 1)
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:
        err.print_exception()
        _fail(as_json, {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"}, 2)


def _dev_warning(console: Console, dev: bool) -> None:
    if dev:
        console.print(
            "[yellow]development SRS: made on this machine, NOT for production; "
            "set PROVER_SRS_PATH to a ceremony SRS file[/yellow]"
        )


def _load_data(path: Path | None) -> Any:
    from prover.circuits.data import load_json

    return None if path is None else load_json(path)


@app.command()
def compile(
    model: Path = typer.Argument(..., help="ONNX model file."),
    calibration: Path | None = typer.Option(
        None, help="Calibration data: ezkl input.json or nested lists of samples."
    ),
    input_visibility: str = typer.Option("public", help="public|private|hashed|polycommit"),
    param_visibility: str = typer.Option("fixed", help="fixed|private|public|hashed|polycommit"),
    output_visibility: str = typer.Option("public", help="public|private|hashed|polycommit"),
    tolerance: float | None = typer.Option(
        None, help="Max output error relative to max(1, |float output|). Default from config."
    ),
    strategy: str = typer.Option(
        "search", help="search (tune run args) or ezkl-default (ezkl's own calibration)."
    ),
    lookup_margin: float = typer.Option(
        2.0, help="Lookup tables cover the calibration range times this (>= 1)."
    ),
    objective: str = typer.Option(
        "prove-time", help="prove-time, or verify-gas (fewest committed columns first)."
    ),
    reusable_verifier: bool = typer.Option(
        False, help="Keys for ezkl's shared reusable EVM verifier (for verifiers over 24 KB)."
    ),
    srs: Path | None = typer.Option(None, help="Ceremony SRS file (overrides PROVER_SRS_PATH)."),
    remote: bool = RemoteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Compile an ONNX model into a circuit (cached: the same request is instant)."""

    def action() -> None:
        from prover.circuits.compiler import compile_model
        from prover.service.options import CompileRequest

        requested = {
            "input_visibility": input_visibility,
            "param_visibility": param_visibility,
            "output_visibility": output_visibility,
            "tolerance": tolerance,
            "strategy": strategy,
            "objective": objective,
            "lookup_margin": lookup_margin,
            "reusable_verifier": reusable_verifier,
        }
        if remote:
            from prover.cli_service import remote_compile

            view = remote_compile(model, calibration, requested, as_json)
            record = {**view["record"], "cached": False, "job_id": view["job_id"]}
        else:
            settings: Settings = get_settings()
            if srs is not None:
                settings = settings.model_copy(update={"srs_path": srs})
            options = CompileRequest.parse(requested).core_options(settings)
            with _progress(not as_json, "compile") as progress:
                record = compile_model(
                    model, _load_data(calibration), options, _store(), settings, progress
                )
        result = {"circuit_id": record["id"], **record}

        def human(out: Console) -> None:
            run_args, acc = record["settings"], record["accuracy"]
            out.print(f"circuit  {record['id']}{'  (cached)' if record['cached'] else ''}")
            out.print(f"model    {record['model_id']}  {record['model_name']}")
            out.print(
                f"logrows  {record['logrows']}   scale {run_args['input_scale']}   "
                f"decomp {run_args['decomp_base']}x{run_args['decomp_legs']}   "
                f"inner cols {run_args['num_inner_cols']}"
            )
            out.print(
                f"accuracy max abs err {acc['max_abs_error']:.3g}  relative "
                f"{acc['relative_error']:.3g}  argmax agreement {acc['argmax_agreement']}  "
                f"({acc['samples']} samples, tolerance {record['tolerance']})"
            )
            _dev_warning(out, record["dev_srs"])

        _emit(result, as_json, human)

    _run(as_json, action)


@app.command()
def prove(
    circuit_id: str = typer.Argument(..., help="Circuit id (or a unique prefix)."),
    input: Path = typer.Option(..., "--input", help="Input: ezkl input.json or nested lists."),
    fresh: bool = typer.Option(False, help="Prove again even if this input was proven."),
    remote: bool = RemoteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Prove one inference: witness + proof; prints the rescaled outputs."""

    def action() -> None:
        from prover.proving.proofs import prove_input

        if remote:
            from prover.cli_service import remote_prove

            view = remote_prove(circuit_id, input, fresh, as_json)
            record = {**view, "id": view["proof_id"], "cached": False}
        else:
            with _progress(not as_json, "prove") as progress:
                record = prove_input(_store(), circuit_id, _load_data(input), fresh, progress)

        def human(out: Console) -> None:
            out.print(f"proof    {record['id']}{'  (cached)' if record['cached'] else ''}")
            out.print(f"outputs  {json.dumps(record['outputs'])}")
            first = record["outputs"][0]
            if len(first) == 1 and isinstance(first[0], list) and len(first[0]) > 1:
                top = max(range(len(first[0])), key=first[0].__getitem__)
                out.print(f"argmax   {top}")
            t = record["timings"]
            out.print(
                f"timings  witness {t['witness_s']}s  prove {t['prove_s']}s  "
                f"verify {t['verify_s']}s"
            )
            _dev_warning(out, record["dev_srs"])

        _emit({"proof_id": record["id"], **record}, as_json, human)

    _run(as_json, action)


RpcOpt = typer.Option(None, "--rpc", help="EVM JSON-RPC URL (default PROVER_RPC_URL).")
KeyOpt = typer.Option(None, "--key", help="Sender's private key, hex (default PROVER_PRIVATE_KEY).")


def _chain(rpc: str | None, key: str | None) -> Chain:
    from prover.chain.client import connect

    settings = get_settings()
    return connect(rpc or settings.rpc_url, key or settings.private_key)


@app.command()
def deploy(
    circuit_id: str = typer.Argument(..., help="Circuit id (or a unique prefix)."),
    rpc: str | None = RpcOpt,
    key: str | None = KeyOpt,
    force: bool = typer.Option(False, help="Deploy again even if this chain has it."),
    remote: bool = RemoteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Deploy a circuit's Solidity verifier and register it in the chain's registry."""

    def action() -> None:
        from prover.chain.onchain import deploy_circuit

        if remote:
            from prover.cli_service import remote_job

            record = remote_job(lambda c: c.deploy(circuit_id, force), as_json)
        else:
            record = deploy_circuit(_store(), circuit_id, _chain(rpc, key), force)

        def human(out: Console) -> None:
            reused = "  (already deployed)" if record["reused"] else ""
            out.print(f"verifier {record['verifier_address']}  chain {record['chain_id']}{reused}")
            out.print(
                f"tx       {record['tx_hash']}  gas {record['gas_used']}  "
                f"code {record['runtime_size']} bytes"
            )
            out.print(f"registry {record['registry_address']}  results {record['results_address']}")

        _emit(record, as_json, human)

    _run(as_json, action)


@app.command()
def submit(
    proof_id: str = typer.Argument(..., help="Proof id (or a unique prefix)."),
    rpc: str | None = RpcOpt,
    key: str | None = KeyOpt,
    commit_reveal: bool = typer.Option(
        False, help="Commit first, reveal in a later block: front-running cannot take credit."
    ),
    remote: bool = RemoteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Submit a proven result to the ProvenResults contract; exit 1 if it is refused."""

    def action() -> None:
        from prover.chain.onchain import submit_result

        if remote:
            from prover.cli_service import remote_job

            result = remote_job(lambda c: c.submit_onchain(proof_id, commit_reveal), as_json)
        else:
            result = submit_result(_store(), proof_id, _chain(rpc, key), commit_reveal)

        def human(out: Console) -> None:
            if not result["accepted"]:
                out.print(f"[red]refused[/red]: {result['reason']}")
                return
            event = result["event"]
            out.print(f"[green]accepted[/green]  tx {result['tx_hash']}  gas {result['gas_used']}")
            out.print(f"event    {event['name']}  result {event['result_key']}")
            out.print(f"         prover {event['prover']}  outputs {json.dumps(result['outputs'])}")

        _emit(result, as_json, human)
        if not result["accepted"]:
            raise typer.Exit(1)

    _run(as_json, action)


@app.command()
def verify(
    proof: str = typer.Argument(..., help="Proof id, or an ezkl proof JSON file."),
    circuit: str | None = typer.Option(None, help="Circuit id (needed for a proof file)."),
    onchain: bool = typer.Option(
        False, help="Ask the circuit's registered verifier contract (eth_call; deploy first)."
    ),
    rpc: str | None = RpcOpt,
    key: str | None = KeyOpt,
    remote: bool = RemoteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Verify a proof with ezkl, or with its verifier contract; exit 1 when it is invalid."""

    def action() -> None:
        from prover.proving.proofs import verify as verify_proof

        if remote:
            from prover.cli_service import remote_client

            with remote_client() as client:
                result = client.verify(proof)
        elif onchain:
            from prover.chain.onchain import verify_onchain

            result = verify_onchain(_store(), proof, _chain(rpc, key), circuit)
        else:
            result = verify_proof(_store(), proof, circuit)

        def human(out: Console) -> None:
            where = ""
            if "chain_id" in result:
                where = f"  on chain {result['chain_id']}, verifier {result['verifier_address']}"
                where += f", gas {result['gas']}" if result["gas"] else ""
            if result["valid"]:
                out.print(f"[green]valid[/green]  circuit {result['circuit_id']}{where}")
            else:
                out.print(f"[red]INVALID[/red]: {result['reason']}")
            _dev_warning(out, result["dev_srs"])

        _emit(result, as_json, human)
        if not result["valid"]:
            raise typer.Exit(1)

    _run(as_json, action)


@proof_app.command("export")
def proof_export(
    proof_id: str,
    out: Path = typer.Option(..., "--out", help="Where to write ezkl's proof JSON."),
    as_json: bool = JsonOpt,
) -> None:
    """Write a proof in ezkl's own proof JSON format."""

    def action() -> None:
        from prover.proving.proofs import export_proof

        path = export_proof(_store(), proof_id, out)
        _emit({"path": str(path)}, as_json, lambda c: c.print(str(path)))

    _run(as_json, action)


def _show(kind: str, entry_id: str, as_json: bool) -> None:
    def action() -> None:
        record = _store().read_record(kind, entry_id)  # type: ignore[arg-type]
        _emit(record, as_json, lambda c: c.print_json(json.dumps(record)))

    _run(as_json, action)


def _list(kind: str, columns: dict[str, Callable[[dict], Any]], as_json: bool) -> None:
    def action() -> None:
        records = _store().list_records(kind)  # type: ignore[arg-type]

        def human(out: Console) -> None:
            table = Table(*columns)
            for r in records:
                table.add_row(*(str(get(r)) for get in columns.values()))
            out.print(table)

        _emit({kind: records}, as_json, human)

    _run(as_json, action)


@proof_app.command("show")
def proof_show(proof_id: str, as_json: bool = JsonOpt) -> None:
    """Show a proof record."""
    _show("proofs", proof_id, as_json)


@proof_app.command("list")
def proof_list(as_json: bool = JsonOpt) -> None:
    """List stored proofs."""
    _list(
        "proofs",
        {
            "id": lambda r: r["id"][:16],
            "circuit": lambda r: r["circuit_id"][:16],
            "prove s": lambda r: r["timings"]["prove_s"],
            "created": lambda r: r["created_at"],
        },
        as_json,
    )


@models_app.command("list")
def models_list(as_json: bool = JsonOpt) -> None:
    """List stored models."""
    _list(
        "models",
        {
            "id": lambda r: r["id"][:16],
            "name": lambda r: r["name"],
            "params": lambda r: r["parameter_count"],
            "created": lambda r: r["created_at"],
        },
        as_json,
    )


@models_app.command("show")
def models_show(model_id: str, as_json: bool = JsonOpt) -> None:
    """Show a model record."""
    _show("models", model_id, as_json)


@circuits_app.command("list")
def circuits_list(as_json: bool = JsonOpt) -> None:
    """List compiled circuits."""
    _list(
        "circuits",
        {
            "id": lambda r: r["id"][:16],
            "model": lambda r: r["model_name"],
            "logrows": lambda r: r["logrows"],
            "dev srs": lambda r: r["dev_srs"],
            "created": lambda r: r["created_at"],
        },
        as_json,
    )


@circuits_app.command("show")
def circuits_show(circuit_id: str, as_json: bool = JsonOpt) -> None:
    """Show a circuit record: settings, accuracy, search trials, timings."""
    _show("circuits", circuit_id, as_json)


def main() -> None:
    """Entry point: keep the real stdout for results; ezkl's stdout prints go elsewhere."""
    global _stdout
    sys.stdout.flush()
    _stdout = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    level = os.environ.get("PROVER_LOG_LEVEL", "ERROR").upper()
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("ezkl", "tract_onnx", "tract_core", "tract_hir"):
        logging.getLogger(noisy).setLevel(level)
    import prover.cli_service
    import prover.cli_training  # noqa: F401  (and the training commands)

    app()
