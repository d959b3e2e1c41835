"""``prover provide``: take work from the proof market with one's own machine and chain
account (``prover.provider``); anyone may run it, with no key of the service."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from prover.cli.inputs import connect_chain
from prover.cli.output import JsonOpt, emit, run_action

app = typer.Typer()


@app.command()
def provide(
    rpc: str = typer.Option(..., "--rpc", help="EVM JSON-RPC URL of the market's chain."),
    key: str = typer.Option(..., "--key", help="This provider's private key, hex."),
    service: str = typer.Option(..., "--service", help="The service's URL (no key needed)."),
    floor_wei: int = typer.Option(0, min=0, help="Never lock a request for less (wei)."),
    wei_per_second: int = typer.Option(
        0, min=0, help="What a second of proving costs here (wei): a lock must pay for it."
    ),
    data_dir: Path = typer.Option(
        Path("provider-data"), help="Where fetched circuits and proofs are kept."
    ),
    poll: float = typer.Option(2.0, min=0.1, help="Seconds between looks at the market."),
    once: bool = typer.Option(False, help="Look once, act on what pays, and exit."),
    as_json: bool = JsonOpt,
) -> None:
    """Watch the market, lock what pays, prove, fulfil, and report what was earned."""
    from prover.errors import is_transient
    from prover.provider import Pricing, Provider

    err = Console(stderr=True)

    def action() -> None:
        pricing = Pricing(floor_wei, wei_per_second)
        provider = Provider(service, connect_chain(rpc, key), data_dir, pricing, err.print)
        err.print(f"providing as {provider.chain.account.address} for {service}")
        try:
            while True:
                try:
                    provider.round()
                except Exception as exc:
                    if once or not is_transient(exc):
                        raise
                    err.print(f"{exc}; looking again in {poll} s")
                if once:
                    break
                time.sleep(poll)
        except KeyboardInterrupt:
            pass
        report = {
            "prover": provider.chain.account.address,
            "earned_wei": provider.earned_wei,
            "fulfilled": provider.fulfilled,
        }
        emit(report, as_json, lambda c: c.print(f"earned {provider.earned_wei} wei"))

    run_action(as_json, action)
