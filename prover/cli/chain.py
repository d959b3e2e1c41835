"""On-chain commands: ``prover deploy`` a circuit's verifier, ``prover submit`` a proven
result; here with --rpc/--key, or (``--remote``) with the service's chain account."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

from prover.cli import remote as api
from prover.cli.inputs import KeyOpt, RpcOpt, connect_chain, store
from prover.cli.output import JsonOpt, emit, run_action
from prover.cli.remote import RemoteOpt

app = typer.Typer()


def print_deployment(out: Console, record: dict[str, Any]) -> None:
    """A deployment for people: where the verifier lives and what it cost."""
    if "composite_id" in record:  # a circuit in segments
        out.print(f"verifiers {', '.join(record['verifiers'])}  chain {record['chain_id']}")
        out.print(
            f"composites {record['composites_address']}  link {record['link']}  gas "
            f"{record['deploy_gas_used']} deploy + {record['register_gas_used']} register"
        )
        return
    reused = "  (already deployed)" if record["reused"] else ""
    out.print(f"verifier {record['verifier_address']}  chain {record['chain_id']}{reused}")
    out.print(
        f"tx       {record['tx_hash']}  gas {record['gas_used']}  "
        f"code {record['runtime_size']} bytes"
    )
    out.print(f"registry {record['registry_address']}  results {record['results_address']}")


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
        if remote:
            record = api.run_job(lambda c: c.deploy(circuit_id, force), as_json)
        else:
            from prover.chain.acceptance import deploy_any

            record = deploy_any(store(), circuit_id, connect_chain(rpc, key), force)
        emit(record, as_json, lambda c: print_deployment(c, record))

    run_action(as_json, action)


def print_submission(out: Console, result: dict[str, Any]) -> None:
    """A submission for people: the accepting event, or the reason it was refused."""
    if not result["accepted"]:
        out.print(f"[red]refused[/red]: {result['reason']}")
        return
    event = result["event"]
    out.print(f"[green]accepted[/green]  tx {result['tx_hash']}  gas {result['gas_used']}")
    out.print(f"event    {event['name']}  result {event['result_key']}")
    out.print(f"         prover {event['prover']}  outputs {json.dumps(result['outputs'])}")


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
        if remote:
            result = api.run_job(lambda c: c.submit_onchain(proof_id, commit_reveal), as_json)
        else:
            from prover.chain.acceptance import submit_any

            result = submit_any(store(), proof_id, connect_chain(rpc, key), commit_reveal)
        emit(result, as_json, lambda c: print_submission(c, result))
        if not result["accepted"]:
            raise typer.Exit(1)

    run_action(as_json, action)
