"""Proven inference: ``prover compile``, ``prove`` and ``verify``, here or (``--remote``)
through the service.

The compile flags come from ``CompileRequest``, the one definition of the compile options
that the API form and compile jobs use too, so their defaults and meaning cannot drift.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import annotated_types
import typer
from pydantic.fields import FieldInfo
from rich.console import Console

from prover.cli import remote as api
from prover.cli.inputs import KeyOpt, RpcOpt, connect_chain, load_data, store
from prover.cli.output import JsonOpt, dev_warning, emit, progress, run_action
from prover.cli.remote import RemoteOpt
from prover.config import Settings, get_settings
from prover.service.options import CompileRequest

app = typer.Typer()


def field_help(field: FieldInfo) -> str:
    """A flag's help from its request field: the description, then the choices and bounds
    the request enforces (unless the description names them), as one sentence."""
    text = field.description or ""
    choices: list[str] = []
    if typing.get_origin(field.annotation) is typing.Literal:
        choices = [str(c) for c in typing.get_args(field.annotation)]
        if not all(c in text for c in choices):
            text += ": " + ", ".join(choices)
    for bound in field.metadata:
        if isinstance(bound, annotated_types.Gt):
            text += f" (> {bound.gt})"
        elif isinstance(bound, annotated_types.Ge):
            text += f" (>= {bound.ge})"
    if not any(text.startswith(c) for c in choices):  # a value name keeps its case
        text = text[:1].upper() + text[1:]
    return text + "."


def request_option(name: str) -> Any:
    """A compile flag declared by ``CompileRequest.model_fields[name]``."""
    field = CompileRequest.model_fields[name]
    return typer.Option(field.default, help=field_help(field))


def print_circuit(out: Console, record: dict[str, Any]) -> None:
    """A circuit record for people: its id, size, chosen run args and measured accuracy."""
    run_args, acc = record["settings"], record["accuracy"]
    out.print(f"circuit  {record['id']}{'  (cached)' if record['cached'] else ''}")
    out.print(f"model    {record['model_id']}  {record['model_name']}")
    out.print(
        f"logrows  {record['logrows']}   scale {run_args['input_scale']}   "
        f"decomp {run_args['decomp_base']}x{run_args['decomp_legs']}   "
        f"inner cols {run_args['num_inner_cols']}"
    )
    if acc.get("status") == "unchecked":
        out.print(f"accuracy unchecked: {acc['reason']}")
    else:
        out.print(
            f"accuracy max abs err {acc['max_abs_error']:.3g}  relative "
            f"{acc['relative_error']:.3g}  argmax agreement {acc['argmax_agreement']}  "
            f"({acc['samples']} samples, tolerance {record['tolerance']})"
        )
    dev_warning(out, record["dev_srs"])


@app.command()
def compile(
    model: Path = typer.Argument(..., help="ONNX model file."),
    calibration: Path | None = typer.Option(
        None, help="Calibration data: ezkl input.json or nested lists of samples."
    ),
    input_visibility: str = request_option("input_visibility"),
    param_visibility: str = request_option("param_visibility"),
    output_visibility: str = request_option("output_visibility"),
    tolerance: float | None = request_option("tolerance"),
    strategy: str = request_option("strategy"),
    lookup_margin: float = request_option("lookup_margin"),
    objective: str = request_option("objective"),
    reusable_verifier: bool = request_option("reusable_verifier"),
    srs: Path | None = typer.Option(None, help="Ceremony SRS file (overrides PROVER_SRS_PATH)."),
    remote: bool = RemoteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Compile an ONNX model into a circuit (cached: the same request is instant)."""

    def action() -> None:
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
            view = api.compile_model(model, calibration, requested, as_json)
            record = {**view["record"], "cached": False, "job_id": view["job_id"]}
        else:
            from prover.circuits.compiler import compile_model

            settings: Settings = get_settings()
            if srs is not None:
                settings = settings.model_copy(update={"srs_path": srs})
            options = CompileRequest.parse(requested).core_options(settings)
            with progress(not as_json, "compile") as update:
                record = compile_model(
                    model, load_data(calibration), options, store(), settings, update
                )
        emit({"circuit_id": record["id"], **record}, as_json, lambda c: print_circuit(c, record))

    run_action(as_json, action)


def print_proof(out: Console, record: dict[str, Any]) -> None:
    """A proof record for people: the outputs (and the argmax of a single row of scores)."""
    out.print(f"proof    {record['id']}{'  (cached)' if record['cached'] else ''}")
    out.print(f"outputs  {json.dumps(record['outputs'])}")
    first = record["outputs"][0]
    if len(first) == 1 and isinstance(first[0], list) and len(first[0]) > 1:
        top = max(range(len(first[0])), key=first[0].__getitem__)
        out.print(f"argmax   {top}")
    t = record["timings"]
    out.print(f"timings  witness {t['witness_s']}s  prove {t['prove_s']}s  verify {t['verify_s']}s")
    dev_warning(out, record["dev_srs"])


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
        if remote:
            view = api.prove_input(circuit_id, input, fresh, as_json)
            record = {**view, "id": view["proof_id"], "cached": False}
        else:
            from prover.proving.proofs import prove_input

            with progress(not as_json, "prove") as update:
                record = prove_input(store(), circuit_id, load_data(input), fresh, update)
        emit({"proof_id": record["id"], **record}, as_json, lambda c: print_proof(c, record))

    run_action(as_json, action)


def print_verdict(out: Console, result: dict[str, Any]) -> None:
    """A verification for people: valid (and where), or why not."""
    where = ""
    if "chain_id" in result:
        where = f"  on chain {result['chain_id']}, verifier {result['verifier_address']}"
        where += f", gas {result['gas']}" if result["gas"] else ""
    if result["valid"]:
        out.print(f"[green]valid[/green]  circuit {result['circuit_id']}{where}")
    else:
        out.print(f"[red]INVALID[/red]: {result['reason']}")
    dev_warning(out, result["dev_srs"])


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
        if remote:
            with api.client() as service:
                result = service.verify(proof)
        elif onchain:
            from prover.chain.onchain import verify_onchain

            result = verify_onchain(store(), proof, connect_chain(rpc, key), circuit)
        else:
            from prover.proving.proofs import verify as verify_proof

            result = verify_proof(store(), proof, circuit)
        emit(result, as_json, lambda c: print_verdict(c, result))
        if not result["valid"]:
            raise typer.Exit(1)

    run_action(as_json, action)
