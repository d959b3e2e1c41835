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
from prover.errors import InvalidInputError
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


def print_segmented(out: Console, record: dict[str, Any]) -> None:
    """A circuit in segments for people: its segments' circuits and how they are linked."""
    out.print(f"circuit  {record['id']}{'  (cached)' if record.get('cached') else ''}")
    out.print(
        f"model    {record['model_id']}  in {len(record['segments'])} segments, "
        f"{record['link']} links ({record.get('link_reason', '')})"
    )
    for segment in record["segments"]:
        out.print(
            f"segment  {segment['index']}  {segment['circuit_id']}  logrows {segment['logrows']}"
        )
    acc = record["accuracy"]
    out.print(
        f"accuracy max abs err {acc.get('max_abs_error', float('nan')):.3g} (composite vs float)"
    )
    dev_warning(out, record["dev_srs"])


def print_circuit(out: Console, record: dict[str, Any]) -> None:
    """A circuit record for people: its id, size, chosen run args and measured accuracy."""
    if record.get("type") == "segmented":
        print_segmented(out, record)
        return
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


def print_estimate(out: Console, result: dict[str, Any]) -> None:
    """A cost estimate for people: the chosen circuit's shape and predicted costs."""
    out.print(f"circuit  {result['circuit_id']}  (estimate; {result['basis']}: {result['chosen']})")
    out.print(f"rows     {result['rows']}   logrows {result['logrows']}")
    out.print(f"pk       {result['pk_bytes'] / 2**20:.1f} MiB (predicted)")
    out.print(
        f"memory   {result['peak_memory_bytes'] / 2**20:.0f} MiB per proof, "
        f"{result['compile_peak_memory_bytes'] / 2**20:.0f} MiB to set up"
    )
    out.print(f"time     setup {result['setup_s']:.2f}s  prove {result['prove_s']:.2f}s (2 cores)")


def estimate_locally(
    model: Path,
    calibration: Path | None,
    requested: dict[str, Any],
    srs: Path | None,
    remote: bool,
    as_json: bool,
) -> dict[str, Any]:
    """compile --estimate: the cost model's prediction, on this machine or the service."""
    from prover.circuits.compiler import estimate_model

    if remote:
        return api.estimate(model, calibration, requested)
    settings: Settings = get_settings()
    if srs is not None:
        settings = settings.model_copy(update={"srs_path": srs})
    options = CompileRequest.parse(requested).core_options(settings)
    with progress(not as_json, "estimate") as say:
        return estimate_model(model, load_data(calibration), options, settings, say)


def compile_locally(
    model: Path,
    calibration: Path | None,
    requested: dict[str, Any],
    srs: Path | None,
    as_json: bool,
) -> dict[str, Any]:
    """compile on this machine: one circuit, a batch-N circuit, or a model in segments."""
    from prover.circuits.plans import build_any, compile_plan
    from prover.service.workers import own_capacity

    settings: Settings = get_settings()
    if srs is not None:
        settings = settings.model_copy(update={"srs_path": srs})
    request = CompileRequest.parse(requested)
    options, data = request.core_options(settings), load_data(calibration)
    memory = own_capacity(settings) if request.fit_workers else None
    with (
        progress(not as_json, "compile") as say,
        compile_plan(model, data, options, settings, request, memory) as plan,
    ):
        return build_any(plan, options, store(), settings, say)


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
    segments: int | None = request_option("segments"),
    max_logrows: int | None = request_option("max_logrows"),
    fit_workers: bool = request_option("fit_workers"),
    batch_size: int | None = request_option("batch_size"),
    srs: Path | None = typer.Option(None, help="Ceremony SRS file (overrides PROVER_SRS_PATH)."),
    estimate: bool = typer.Option(
        False,
        "--estimate",
        help="Only predict the circuit's cost (rows, logrows, key size, peak memory, prove "
        "time) from ezkl's calibration: no setup, nothing stored.",
    ),
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
            "segments": segments,
            "max_logrows": max_logrows,
            "fit_workers": fit_workers,
            "batch_size": batch_size,
        }
        if estimate:
            result = estimate_locally(model, calibration, requested, srs, remote, as_json)
            emit(result, as_json, lambda c: print_estimate(c, result))
            return
        if remote:
            view = api.compile_model(model, calibration, requested, as_json)
            record = {**view["record"], "cached": False, "job_id": view["job_id"]}
        else:
            record = compile_locally(model, calibration, requested, srs, as_json)
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
    batching: bool = typer.Option(
        False,
        help="With --remote, on a batch circuit: prove it with this key's other requests "
        "of the service's batch window (one batch proof, a result of its own).",
    ),
    market_max_price: int | None = typer.Option(
        None,
        min=1,
        help="With --remote: buy the proof on the proof market for at most this (wei) "
        "instead of the service's pool; a provider proves it and is paid on chain.",
    ),
    market_timeout: int = typer.Option(600, min=1, help="The market request's deadline (s)."),
    remote: bool = RemoteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Prove one inference: witness + proof; prints the rescaled outputs."""

    def action() -> None:
        if (batching or market_max_price) and not remote:
            raise InvalidInputError("--batching and --market-* ask the service: add --remote")
        if market_max_price:
            offer = {"max_price": market_max_price, "timeout_s": market_timeout}
            offer["lock_timeout_s"] = market_timeout // 2
            bought = api.buy_proof(circuit_id, input, offer, as_json)
            emit(bought, as_json, lambda c: print_purchase(c, bought))
            return
        if remote:
            view = api.prove_input(circuit_id, input, fresh, as_json, batching)
            record = {**view, "id": view["proof_id"], "cached": False}
        else:
            from prover.proving.proofs import prove_input

            with progress(not as_json, "prove") as say:
                record = prove_input(store(), circuit_id, load_data(input), fresh, say)
        emit({"proof_id": record["id"], **record}, as_json, lambda c: print_proof(c, record))

    run_action(as_json, action)


def print_purchase(out: Console, result: dict[str, Any]) -> None:
    """A proof bought on the market, for people: who proved it, for what, the outputs."""
    out.print(
        f"proven by {result['prover']} for {result['price_wei']} wei "
        f"(refunded {result['refund_wei']}) in {result['transaction']}"
    )
    out.print(f"outputs  {result['outputs']}")


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
