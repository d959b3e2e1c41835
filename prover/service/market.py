"""Proofs bought on the proof market (``verifier_contracts/ProofMarket.sol``) instead of
proven by the pool. A ``market`` job opens the request with the service's chain account
(the requester; never a provider's), then follows it on chain; its phases are the
request's: ``requested`` → ``locked`` → ``fulfilled`` (the job succeeds with the prover,
the price and the transaction) or ``expired`` (it fails with ``market_expired`` once the
escrow is refunded).

What a provider needs to prove a request is public (``api.routes.market``): the request
(its circuit, its input), and the circuit's proving files, each with its sha256. Only
circuits with a request on the market are served; nothing else of the service opens.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prover.config import Settings
from prover.errors import InvalidInputError, MarketExpiredError, NotFoundError
from prover.service import jobs
from prover.service.accepting import Accepted, ready_circuit
from prover.service.db import session_scope
from prover.service.events import add_event
from prover.store import ArtifactStore, now_iso, sha256_file

if TYPE_CHECKING:
    from prover.chain.client import Chain
    from prover.circuits.progress import Progress

HOLD_S = 30.0  # a market job follows its request this long, then gives its worker back
POLL_S = 1.0  # how often it reads the request meanwhile
RECHECK_S = 2.0  # when it looks again after giving its worker back


def request_market(
    settings: Settings,
    store: ArtifactStore,
    owner: str,
    circuit_id: str,
    input_obj: Any,
    offer: dict[str, int],
) -> Accepted:
    """Accept a proof request for the market: the input checked as for the pool, the
    circuit one the market can bind an input of; the job opens the request."""
    from prover.circuits.data import sample_digest_material
    from prover.proving.instances import check_marketable
    from prover.proving.plans import plan_proof

    db_url = settings.sqlalchemy_url()
    with session_scope(db_url) as session:
        ready_circuit(session, owner, circuit_id)
    plan = plan_proof(store, circuit_id, input_obj)
    check_marketable(store, plan.circuit)
    params = {
        "circuit_id": plan.circuit["id"],
        "input": sample_digest_material(plan.sample),
        "input_digest": plan.input_digest,
        "offer": offer,
    }
    with session_scope(db_url) as session:
        job = jobs.new_job(session, "market", plan.circuit["id"], owner, params)
        response = {"proof_id": None, "job_id": job.id, "state": "requested"}
        return response, [(job.id, "market")]


def run_market(
    claim: jobs.Claim, store: ArtifactStore, settings: Settings, progress: Progress
) -> dict[str, Any]:
    """Open the job's request (once), then follow it until it is fulfilled or expired."""
    from prover.chain.client import connect

    assert claim.job_id is not None and claim.params is not None
    chain = connect(settings.rpc_url, settings.private_key)
    noted = store.exists("market", claim.job_id)
    opened = store.read_record("market", claim.job_id) if noted else {}
    if "request_id" not in opened:
        progress("requesting", 0.05)
        opened = _open(store, chain, claim.job_id, claim.params, opened.get("ramp_start"))
    assert claim.owner is not None
    announce = _announcer(store, settings.sqlalchemy_url(), claim.owner, opened)
    return _follow(store, chain, opened, progress, announce)


Announce = Callable[[str, dict[str, Any]], None]


def _announcer(store: ArtifactStore, db_url: str, owner: str, opened: dict[str, Any]) -> Announce:
    """Tell the requester each new status of its request, once: a ``market.<status>``
    event (its stream and webhooks). The status last told is kept in the request's
    record, so a job that gave its worker back and runs again does not repeat it (one
    that dies between the two may: at least once)."""
    told = {"phase": opened.get("phase")}
    where = {k: opened[k] for k in ("request_id", "market_address", "circuit_id")}

    def announce(phase: str, data: dict[str, Any]) -> None:
        if told["phase"] == phase:
            return
        with session_scope(db_url) as session:
            body = {"job_id": opened["id"], "status": phase, **where, **data}
            add_event(session, owner, f"market.{phase}", opened["id"], body)
        store.update_record("market", opened["id"], lambda r: {**r, "phase": phase})
        told["phase"] = phase

    return announce


def _open(
    store: ArtifactStore,
    chain: Chain,
    job_id: str,
    params: dict[str, Any],
    ramp_start: int | None,
) -> dict[str, Any]:
    """Register the circuit if needed, open the request escrowing the max price, and
    publish what a provider needs (the files' digests, hashed for a circuit's first
    request).

    The ramp starts at the chain's time, noted before the request is sent: a job run
    again sends the same transaction, which the chain journal recognises, rather than
    opening a second request."""
    import numpy as np

    from prover.chain import market
    from prover.chain.acceptance import deploy_any
    from prover.chain.evm_verifier import verifier_artifact
    from prover.proving.instances import witness_instances
    from prover.proving.plans import ProofPlan

    circuit = store.read_record("circuits", params["circuit_id"])
    sample = [np.asarray(values, dtype=np.float64) for values in params["input"]]
    plan = ProofPlan(circuit, sample, params["input_digest"], "")
    instances = witness_instances(store, plan)[: market.input_count(circuit)]
    deploy_any(store, circuit["id"], chain)
    address = market.market_address(store, chain)
    if ramp_start is None:
        ramp_start = market.chain_time(chain)
        store.save_record("market", job_id, {"id": job_id, "ramp_start": ramp_start})
    o = params["offer"]
    offer = market.Offer(
        o["min_price"], o["max_price"], ramp_start, o["ramp_s"],
        o["lock_timeout_s"], o["timeout_s"], o["collateral"],
    )  # fmt: skip
    request_id, receipt = market.open_request(chain, address, circuit["id"], instances, offer)
    record = {
        "id": job_id,
        "type": "market_request",
        "created_at": now_iso(),
        "chain_id": chain.chain_id,
        "market_address": address,
        "request_id": request_id,
        "requester": chain.account.address,
        "open_transaction": "0x" + bytes(receipt["transactionHash"]).hex(),
        "open_block": int(receipt["blockNumber"]),
        "circuit_id": circuit["id"],
        "input": params["input"],
        "input_digest": params["input_digest"],
        "input_count": len(instances),
        "input_commitment": "0x" + market.input_commitment(instances).hex(),
        "offer": o,
        "ramp_start": ramp_start,
        "vka": verifier_artifact(store, circuit["id"]).get("vka", []),
        "files": _file_digests(store, circuit),
    }
    store.save_record("market", job_id, record)
    return record


def _file_digests(store: ArtifactStore, circuit: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The circuit's proving files' sha256 and size: an earlier request's for the same
    circuit (its files never change: a circuit is content-addressed), else hashed."""
    from prover.chain import market

    for record in _opened(store):
        if record["circuit_id"] == circuit["id"]:
            return dict(record["files"])
    directory = store.path("circuits", circuit["id"])
    paths = {name: directory / name for name in market.PROVING_FILES}
    paths[market.SRS_FILE] = store.srs_path(circuit)
    return {name: {"sha256": sha256_file(p), "size": p.stat().st_size} for name, p in paths.items()}


def _follow(
    store: ArtifactStore,
    chain: Chain,
    opened: dict[str, Any],
    progress: Progress,
    announce: Announce,
) -> dict[str, Any]:
    """The request's status as the job's phase, read every ``POLL_S`` for ``HOLD_S``; then
    ``jobs.Waiting`` gives the worker back until ``RECHECK_S`` later."""
    from prover.chain import market

    address, request_id = opened["market_address"], opened["request_id"]
    held_until = time.monotonic() + HOLD_S
    while True:
        state = market.request_state(chain, address, request_id)
        if state["status"] == "fulfilled":
            progress("fulfilled", 0.99)
            result = _fulfilled(store, chain, opened)
            announce("fulfilled", {k: result[k] for k in ("prover", "price_wei", "transaction")})
            return result
        if state["status"] == "expired" or market.chain_time(chain) > state["offer"].deadline:
            progress("expired", 0.99)
            _expire(chain, opened, state["status"], announce)
        phase, fraction = ("locked", 0.5) if state["status"] == "locked" else ("requested", 0.2)
        progress(phase, fraction)
        announce(phase, {"locker": state["prover"]} if state["prover"] else {})
        if time.monotonic() >= held_until:
            raise jobs.Waiting(phase, fraction, retry_in_s=RECHECK_S)
        time.sleep(POLL_S)


def _claim(chain: Chain, opened: dict[str, Any]) -> None:
    """Take the request's refund (none where it paid the max price, or where a run of
    this job before took it)."""
    from prover.chain import market

    address, request_id = opened["market_address"], opened["request_id"]
    if market.owed(chain, address, request_id, chain.account.address) > 0:
        market.claim(chain, address, request_id)


def _expire(chain: Chain, opened: dict[str, Any], status: str, announce: Announce) -> None:
    from prover.chain import market

    address, request_id = opened["market_address"], opened["request_id"]
    if status != "expired":
        market.expire(chain, address, request_id)
    _claim(chain, opened)
    announce("expired", {"refund_wei": opened["offer"]["max_price"]})
    raise MarketExpiredError(
        f"market request {request_id} passed its deadline unfulfilled; its escrow of "
        f"{opened['offer']['max_price']} wei was refunded",
        request_id=request_id,
        market_address=address,
    )


def _fulfilled(store: ArtifactStore, chain: Chain, opened: dict[str, Any]) -> dict[str, Any]:
    """The job's result: who proved it, for what, in which transaction, and the outputs
    read from the accepted instances."""
    from prover.chain import market

    address, request_id = opened["market_address"], opened["request_id"]
    done = market.fulfilment(chain, address, request_id, opened["open_block"])
    _claim(chain, opened)
    circuit = store.read_record("circuits", opened["circuit_id"])
    return {
        "status": "fulfilled",
        "request_id": request_id,
        "market_address": address,
        "chain_id": opened["chain_id"],
        "input_digest": opened["input_digest"],
        **{k: v for k, v in done.items() if k != "instances"},
        "refund_wei": opened["offer"]["max_price"] - done["price_wei"],
        "outputs": _outputs(store, circuit, done["instances"]),
    }


def _outputs(
    store: ArtifactStore, circuit: dict[str, Any], instances: list[int]
) -> list[Any] | None:
    """A public output's values, from the last instances (field elements, scaled by
    ``2**scale``, negatives wrapped around the field's modulus)."""
    import json

    import numpy as np

    from prover.chain.market import rescaled

    if circuit["visibility"]["output"] != "public":
        return None
    settings = json.loads((store.path("circuits", circuit["id"]) / "settings.json").read_text())
    shapes = [[int(d) for d in spec["shape"]] for spec in circuit["outputs"]]
    values = instances[len(instances) - sum(math.prod(shape) for shape in shapes) :]
    outputs, at = [], 0
    for shape, scale in zip(shapes, settings["model_output_scales"], strict=True):
        flat = rescaled(values[at : at + math.prod(shape)], scale)
        outputs.append(np.reshape(flat, shape).tolist())
        at += math.prod(shape)
    return outputs


def requests_on_market(store: ArtifactStore) -> list[dict[str, Any]]:
    """Every request the service opened, newest first, as a provider sees it."""
    return [_public(r) for r in reversed(_opened(store))]


def request_on_market(store: ArtifactStore, request_id: int) -> dict[str, Any]:
    for record in _opened(store):
        if record["request_id"] == request_id:
            return _public(record)
    raise NotFoundError(f"the service opened no market request {request_id}", id=request_id)


def _opened(store: ArtifactStore) -> list[dict[str, Any]]:
    """The requests opened (a job about to open one has noted only its ramp's start)."""
    return [r for r in store.list_records("market") if "request_id" in r]


def _public(record: dict[str, Any]) -> dict[str, Any]:
    """A request without its job's id (a provider needs none of the requester's own)."""
    return {k: v for k, v in record.items() if k not in ("id", "type")}


def circuit_on_market(store: ArtifactStore, circuit_id: str) -> dict[str, Any]:
    """A circuit a market request names: its record and its proving files' digests."""
    for record in reversed(_opened(store)):
        if record["circuit_id"] == circuit_id:
            circuit = store.read_record("circuits", circuit_id)
            return {"circuit_id": circuit_id, "record": circuit, "files": record["files"]}
    raise NotFoundError(f"no market request names circuit {circuit_id!r}", id=circuit_id)


def market_file(store: ArtifactStore, circuit_id: str, name: str) -> Path:
    """One proving file of a circuit on the market (``srs``: its SRS)."""
    from prover.chain import market

    names = (*market.PROVING_FILES, market.SRS_FILE)
    if name not in names:
        raise InvalidInputError(f"no market file {name!r}: one of {', '.join(names)}")
    circuit = circuit_on_market(store, circuit_id)["record"]
    if name == market.SRS_FILE:
        return store.srs_path(circuit)
    return store.path("circuits", circuit_id) / name
