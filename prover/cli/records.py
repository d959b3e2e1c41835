"""What the artifact store holds: ``prover proof``, ``models`` and ``circuits`` (list,
show; ``proof export`` writes a proof in ezkl's format for ezkl's own tools)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from prover.cli.inputs import store
from prover.cli.output import JsonOpt, emit, run_action

if TYPE_CHECKING:
    from prover.store import Collection

proof_app = typer.Typer(no_args_is_help=True, help="Inspect and export proofs.")
models_app = typer.Typer(no_args_is_help=True, help="Models in the store.")
circuits_app = typer.Typer(no_args_is_help=True, help="Circuits in the store.")

Column = Callable[[dict[str, Any]], Any]


def show(collection: Collection, entry_id: str, as_json: bool) -> None:
    """Print one record (as JSON either way: records are nested)."""

    def action() -> None:
        record = store().read_record(collection, entry_id)
        emit(record, as_json, lambda c: c.print_json(json.dumps(record)))

    run_action(as_json, action)


def list_table(collection: Collection, columns: dict[str, Column], as_json: bool) -> None:
    """Print a collection: every record as JSON, or a table of the given columns."""

    def action() -> None:
        records = store().list_records(collection)

        def human(out: Console) -> None:
            table = Table(*columns)
            for r in records:
                table.add_row(*(str(get(r)) for get in columns.values()))
            out.print(table)

        emit({collection: records}, as_json, human)

    run_action(as_json, action)


@proof_app.command("export")
def proof_export(
    proof_id: str,
    out: Path = typer.Option(..., "--out", help="Where to write ezkl's proof JSON."),
    as_json: bool = JsonOpt,
) -> None:
    """Write a proof in ezkl's own proof JSON format."""

    def action() -> None:
        from prover.proving.proofs import export_proof

        path = export_proof(store(), proof_id, out)
        emit({"path": str(path)}, as_json, lambda c: c.print(str(path)))

    run_action(as_json, action)


@proof_app.command("show")
def proof_show(proof_id: str, as_json: bool = JsonOpt) -> None:
    """Show a proof record."""
    show("proofs", proof_id, as_json)


@proof_app.command("list")
def proof_list(as_json: bool = JsonOpt) -> None:
    """List stored proofs."""
    list_table(
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
    list_table(
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
    show("models", model_id, as_json)


@circuits_app.command("list")
def circuits_list(as_json: bool = JsonOpt) -> None:
    """List compiled circuits."""
    list_table(
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
    show("circuits", circuit_id, as_json)
