"""A prover anyone can run against the proof market (``prover provide``): it reads the
requests a service opened, prices each with the circuit's cost estimate scaled by its own
measured speed, locks what pays, proves on its own cores and is paid on chain.

It trusts the service for nothing it cannot check: every file is checked against its
sha256, the input against its digest, and the input's instances (from the witness)
against the commitment the chain holds, before anything is locked. The chain checks the
rest: the proof against the circuit's registered verifier.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from prover.chain import market
from prover.chain.client import Chain
from prover.chain.onchain import verifier_arguments
from prover.client import Client
from prover.errors import (
    ChainError,
    ConflictError,
    ProverError,
    StoreIntegrityError,
    is_transient,
)
from prover.proving.instances import witness_instances
from prover.proving.plans import ProofPlan
from prover.proving.proofs import prove_circuit
from prover.store import RECORD, ArtifactStore, canonical_digest, sha256_file

Say = Callable[[str], None]


@dataclass(frozen=True)
class Pricing:
    """What a lock must pay: at least ``floor_wei``, and ``wei_per_s`` for each second the
    proof is expected to take here; a lock is taken only with ``margin_s`` (and the
    expected time) left before its deadline."""

    floor_wei: int = 0
    wei_per_s: int = 0
    margin_s: float = 10.0


class Provider:
    """One provider: its chain account, its own artifact store, what it has earned."""

    def __init__(
        self, service_url: str, chain: Chain, data_dir: Path, pricing: Pricing, say: Say
    ) -> None:
        self.service_url = service_url.rstrip("/")
        self.client = Client(self.service_url, None)
        self.chain, self.pricing, self.say = chain, pricing, say
        self.store = ArtifactStore(data_dir)
        self.speed = 1.0  # its proving seconds per estimated second, learned as it proves
        self.finished: set[tuple[str, int]] = set()
        self.listings: dict[str, dict[str, Any]] = {}  # circuits are content-addressed
        self.fulfilled: list[dict[str, Any]] = []

    @property
    def earned_wei(self) -> int:
        return sum(f["earned_wei"] for f in self.fulfilled)

    def round(self) -> None:
        """Look at every request once: lock and prove those that pay. A request that
        cannot be proven as offered is left for good, said why; a transient fault (the
        chain or the service not answering) leaves it for the next round."""
        for request in self.client.market_requests()["requests"]:
            where = (request["market_address"], request["request_id"])
            if request["chain_id"] != self.chain.chain_id or where in self.finished:
                continue
            try:
                self.consider(request)
            except Exception as exc:
                if not (isinstance(exc, ProverError) or is_transient(exc)):
                    raise  # a bug: said in full, not taken for the request's fault
                if not is_transient(exc):
                    self.finished.add(where)
                self.say(f"request {request['request_id']}: left: {exc}")

    def consider(self, request: dict[str, Any]) -> None:
        """Lock and fulfil an open request that pays (past its lock deadline, fulfil it
        unlocked); fulfil a lapsed lock (its collateral share); note a request that is
        over."""
        address, request_id = request["market_address"], request["request_id"]
        state = market.request_state(self.chain, address, request_id)
        now, offer = market.chain_time(self.chain), state["offer"]
        if state["status"] in ("fulfilled", "expired") or now > offer.deadline:
            self.finished.add((address, request_id))
        elif state["status"] == "open" and (way := self._way(request, offer, now)):
            if way == "lock":
                self._take(request, state)
            else:
                self.say(f"request {request_id}: past its lock deadline; fulfilling unlocked")
                self._fulfil(request, self.prepare(request, state))
        elif state["status"] == "locked" and self._lapsed(state, now):
            self.say(f"request {request_id}: its lock lapsed; fulfilling it late")
            self._fulfil(request, self.prepare(request, state))

    def _lapsed(self, state: dict[str, Any], now: int) -> bool:
        """Another's lock past its deadline: anyone may fulfil it for half its collateral."""
        mine = state["prover"] == self.chain.account.address
        return not mine and now > state["offer"].lock_deadline

    def _way(self, request: dict[str, Any], offer: market.Offer, now: int) -> str | None:
        """How to take an open request whose price now pays for the expected proving time:
        ``lock`` it while its lock deadline leaves that time (and the margin), else
        ``unlocked`` (fulfil it at the ramp's price, first come first paid, risking no
        collateral) while its final deadline does; None where it does not pay, or no
        deadline leaves the time."""
        seconds = self.expected_s(request["circuit_id"])
        needed = max(self.pricing.floor_wei, math.ceil(seconds * self.pricing.wei_per_s))
        price = offer.price_at(now)
        if price < needed:
            self.say(f"request {request['request_id']}: pays {price} wei, needs {needed}")
            return None
        if offer.lock_deadline - now >= seconds + self.pricing.margin_s:
            return "lock"
        if offer.deadline - now >= seconds + self.pricing.margin_s:
            return "unlocked"
        self.finished.add((request["market_address"], request["request_id"]))
        self.say(f"request {request['request_id']}: too little time left; skipped")
        return None

    def expected_s(self, circuit_id: str) -> float:
        """The proof's expected time here: the circuit's estimate times this machine's
        measured speed."""
        return estimated_s(self.listing(circuit_id)["record"]) * self.speed

    def listing(self, circuit_id: str) -> dict[str, Any]:
        """A circuit on the market (record, files' digests), asked of the service once."""
        if circuit_id not in self.listings:
            self.listings[circuit_id] = self.client.market_circuit(circuit_id)
        return self.listings[circuit_id]

    def _take(self, request: dict[str, Any], state: dict[str, Any]) -> None:
        request_id = request["request_id"]
        plan = self.prepare(request, state)
        try:
            market.lock(self.chain, request["market_address"], request_id)
        except ChainError as exc:  # another provider locked it first
            self.finished.add((request["market_address"], request_id))
            self.say(f"request {request_id}: not locked ({exc.details.get('revert')})")
            return
        self.say(f"request {request_id}: locked")
        self._fulfil(request, plan)

    def prepare(self, request: dict[str, Any], state: dict[str, Any]) -> ProofPlan:
        """The request's circuit installed and its input checked: by digest, then by its
        instances against the chain's commitment."""
        circuit = self.install(request["circuit_id"])
        if canonical_digest(request["input"]) != request["input_digest"]:
            raise StoreIntegrityError("the service's input does not match its digest")
        sample = [np.asarray(values, dtype=np.float64) for values in request["input"]]
        identity = {"circuit": circuit["id"], "input": request["input_digest"]}
        plan = ProofPlan(circuit, sample, request["input_digest"], canonical_digest(identity))
        instances = witness_instances(self.store, plan)
        commitment = market.input_commitment(instances[: request["input_count"]])
        if "0x" + commitment.hex() != state["input_commitment"]:
            raise StoreIntegrityError(
                "the service's input is not the one the chain's request commits to"
            )
        if market.result_accepted(self.chain, request["market_address"], circuit["id"], instances):
            raise ConflictError("its result is on chain already: a fulfilment would revert")
        return plan

    def install(self, circuit_id: str) -> dict[str, Any]:
        """The circuit in this provider's store, each file fetched once and checked."""
        if self.store.exists("circuits", circuit_id):
            return self.store.read_record("circuits", circuit_id)
        listing = self.listing(circuit_id)
        record, files = listing["record"], listing["files"]
        srs = Path("srs") / f"{files[market.SRS_FILE]['sha256']}.srs"
        if not (self.store.root / srs).is_file():
            self._download(
                circuit_id, market.SRS_FILE, files[market.SRS_FILE], self.store.root / srs
            )
        with self.store.create("circuits", circuit_id) as out:
            for name in market.PROVING_FILES:
                self._download(circuit_id, name, files[name], out / name)
            record = {**record, "srs": {**record["srs"], "path": str(srs)}}
            (out / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True))
        return self.store.read_record("circuits", circuit_id)

    def _download(self, circuit_id: str, name: str, want: dict[str, Any], dest: Path) -> None:
        url = f"{self.service_url}/v1/market/circuits/{circuit_id}/files/{name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".part")
        with httpx.stream("GET", url, timeout=60) as response, partial.open("wb") as f:
            response.raise_for_status()
            for chunk in response.iter_bytes(1 << 20):
                f.write(chunk)
        if sha256_file(partial) != want["sha256"]:
            partial.unlink()
            raise StoreIntegrityError(f"{name} of circuit {circuit_id[:16]}: sha256 differs")
        partial.replace(dest)

    def _fulfil(self, request: dict[str, Any], plan: ProofPlan) -> None:
        """Prove, fulfil, claim; learn this machine's speed from the proof's time."""
        address, request_id = request["market_address"], request["request_id"]
        if self.store.exists("proofs", plan.proof_id):
            record = {**self.store.read_record("proofs", plan.proof_id), "cached": True}
        else:
            record = prove_circuit(self.store, plan)
        estimate = estimated_s(plan.circuit)
        if not record.get("cached") and estimate > 0:
            self.speed = 0.5 * self.speed + 0.5 * record["timings"]["prove_s"] / estimate
        proof, instances = verifier_arguments(
            self.store.path("proofs", plan.proof_id) / "proof.json"
        )
        vka = [bytes.fromhex(word[2:]) for word in request["vka"]]
        receipt = market.fulfil(self.chain, address, request_id, proof, instances, vka)
        self.finished.add((address, request_id))
        earned = market.owed(self.chain, address, request_id, self.chain.account.address)
        if earned:
            market.claim(self.chain, address, request_id)
        tx = "0x" + bytes(receipt["transactionHash"]).hex()
        self.fulfilled.append({"request_id": request_id, "earned_wei": earned, "transaction": tx})
        self.say(f"request {request_id}: fulfilled in {tx}, earned {earned} wei")


def estimated_s(circuit: dict[str, Any]) -> float:
    """The circuit's estimated proving time on the service's machine (0 where its record
    has none: the floor price alone then)."""
    return float((circuit.get("estimate") or {}).get("prove_s") or 0.0)
