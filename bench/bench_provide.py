"""Benchmark the proof market end to end: from a proof request with ``market`` to the
provider's payment, with one provider on this machine, beside the same proof from the
service's own pool.

One run starts a private stack (its own Redis, anvil, one worker and the API, over a
fresh temporary data dir), compiles the model with ezkl's own settings, then for each of
``--requests`` inputs: asks for a market proof and runs a provider (``prover.provider``,
anvil's second account, its own data dir) until it has been paid; then asks the pool for
a proof of another input. Times, each from the request's POST:

* open: the service's job has opened the request on chain (it is listed for providers);
* paid: the provider has locked, fetched (the first time), proven, fulfilled and
  claimed its payment;
* job end: the service's job has seen the fulfilment (it polls the chain every second).

Run from the repository root::

    .venv/bin/python bench/bench_provide.py [--model digits_mlp] [--requests 3] \\
        [--json out.json] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench_service import compile_circuit, percentile, running, say
from common import MODELS_DIR, RESULTS, environment, format_table, write_json

from prover.chain.client import connect
from prover.chain.node import free_port
from prover.client import Client
from prover.config import Settings
from prover.provider import Pricing, Provider
from prover.service.keys import create_key

# anvil's second development account (public, well known): the provider's.
PROVIDER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
GWEI = 10**9
OFFER = {"max_price": 5_000 * GWEI, "min_price": 1_000 * GWEI, "ramp_s": 60}


def _varied(sample: str, i: int) -> Any:
    """The model's sample input, nudged so that each request is a new result."""
    values = json.loads(sample)["input_data"][0]
    values[0] = float(values[0]) + i * 1e-3
    return [values]


def market_proof(client: Client, provider: Provider, circuit_id: str, values: Any) -> dict:
    """One market proof: seconds from the request to open, paid and the job's end."""
    started = time.perf_counter()
    job_id = client.request_proof(circuit_id, values, market=OFFER)["job_id"]
    while client.job(job_id)["phase"] != "requested":
        time.sleep(0.05)
    opened = time.perf_counter()
    paid_before = len(provider.fulfilled)
    while len(provider.fulfilled) == paid_before:
        provider.round()
    paid = time.perf_counter()
    result = client.wait(job_id, timeout=600)["result"]
    ended = time.perf_counter()
    return {
        "open_s": opened - started,
        "paid_s": paid - started,
        "job_end_s": ended - started,
        "price_wei": result["price_wei"],
        "earned_wei": provider.fulfilled[-1]["earned_wei"],
    }


def pool_proof(client: Client, circuit_id: str, values: Any) -> float:
    started = time.perf_counter()
    client.wait(client.request_proof(circuit_id, values, fresh=True)["job_id"], timeout=600)
    return time.perf_counter() - started


def run(model: str, requests: int) -> dict[str, Any]:
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-provide-") as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "service",
            redis_url=f"redis://127.0.0.1:{free_port()}/0",
            rpc_url=f"http://127.0.0.1:{free_port()}",
            api_port=free_port(),
            workers=1,
            measure_top=1,
        )
        settings.data_dir.mkdir()
        with running(settings):
            api = f"http://127.0.0.1:{settings.api_port}"
            key = create_key(settings.sqlalchemy_url(), "bench")["key"]
            chain = connect(settings.rpc_url, PROVIDER_KEY)
            provider = Provider(api, chain, Path(tmp) / "provider", Pricing(), say)
            with Client(api, key, timeout=600) as client:
                circuit_id = compile_circuit(client, MODELS_DIR / model, strategy="ezkl-default")
                sample = (MODELS_DIR / model / "input.json").read_text()
                market = [
                    market_proof(client, provider, circuit_id, _varied(sample, i))
                    for i in range(requests)
                ]
                pool = [
                    pool_proof(client, circuit_id, _varied(sample, 1000 + i))
                    for i in range(requests)
                ]
    return {"model": model, "market": market, "pool_s": pool, "environment": environment(load)}


def table(result: dict[str, Any], markdown: bool) -> str:
    market = result["market"]
    headers = ["", "open s", "paid s", "job end s", "pool proof s"]

    def row(name: str, pick: Any) -> list[str]:
        cells = [pick([m[k] for m in market]) for k in ("open_s", "paid_s", "job_end_s")]
        return [name, *(f"{c:.2f}" for c in cells), f"{pick(result['pool_s']):.2f}"]

    rows = [row("first (fetches the circuit)", lambda v: v[0])]
    if len(market) > 1:
        rows.append(row("p50 of the rest", lambda v: percentile(v[1:], 50)))
    return format_table(headers, rows, markdown)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="digits_mlp", metavar="DIR", help="under models/")
    parser.add_argument("--requests", type=int, default=3, help="market proofs to time")
    parser.add_argument("--json", type=Path, default=RESULTS / "provide.json")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.model, args.requests)
    print(table(result, args.markdown))
    write_json(args.json, result)
    print(f"raw numbers written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
