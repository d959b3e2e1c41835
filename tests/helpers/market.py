"""ProofMarket's rules in Python, for the property test: what each action should do on
chain, to the wei: the contract's error, or (None) whom it credits."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from prover.chain.market import Offer

BURN_BPS = 5000  # ProofMarket.BURN_BPS


@dataclass
class Request:
    requester: str
    offer: Offer
    input: int  # which of the test's inputs it asks about
    status: str = "open"
    locker: str | None = None
    lock_price: int = 0


@dataclass
class Model:
    """The market's expected state; each action at block time ``t`` returns the error the
    contract should raise (and changes nothing), or None (and applies its effects)."""

    requests: dict[int, Request] = field(default_factory=dict)
    credit: Counter[str] = field(default_factory=Counter)
    burned: int = 0
    deposited: int = 0
    withdrawn: int = 0
    accepted: set[int] = field(default_factory=set)  # inputs whose result is accepted

    def open(self, requester: str, input_index: int, offer: Offer) -> None:
        self.requests[len(self.requests) + 1] = Request(requester, offer, input_index)
        self.deposited += offer.max_price

    def lock(self, prover: str, request_id: int, t: int) -> str | None:
        r = self.requests.get(request_id)
        if r is None or r.status != "open":
            return "NotOpen"
        if t > r.offer.lock_deadline:
            return "LockDeadlinePassed"
        r.status, r.locker, r.lock_price = "locked", prover, r.offer.price_at(t)
        self.deposited += r.offer.lock_collateral
        return None

    def fulfil(self, prover: str, request_id: int, proof_input: int, t: int) -> str | None:
        r = self.requests.get(request_id)
        if r is None or r.status not in ("open", "locked"):
            return "NotOpen"
        if t > r.offer.deadline:
            return "DeadlinePassed"
        refused = self._lock_refusal(r, prover, t)
        if refused or proof_input != r.input:
            return refused or "InputMismatch"
        if proof_input in self.accepted:
            return "AlreadyAccepted"
        price = earned = r.offer.price_at(t)
        if r.status == "locked" and t <= r.offer.lock_deadline:
            price, earned = r.lock_price, r.lock_price + r.offer.lock_collateral
        elif r.status == "locked":
            price, earned = 0, self._slash(r)
        self.credit[prover] += earned
        self.credit[r.requester] += r.offer.max_price - price
        self.accepted.add(proof_input)
        r.status = "fulfilled"
        return None

    def expire(self, request_id: int, t: int) -> str | None:
        r = self.requests.get(request_id)
        if r is None or r.status not in ("open", "locked"):
            return "NotOpen"
        if t <= r.offer.deadline:
            return "NotExpired"
        self.credit[r.requester] += r.offer.max_price
        if r.status == "locked":
            self.credit[r.requester] += self._slash(r)
        r.status = "expired"
        return None

    def withdraw(self, account: str) -> str | None:
        if self.credit[account] == 0:
            return "NothingToWithdraw"
        self.withdrawn += self.credit.pop(account)
        return None

    def _lock_refusal(self, r: Request, prover: str, t: int) -> str | None:
        if r.status != "locked":
            return None
        if t <= r.offer.lock_deadline:
            return None if prover == r.locker else "RequestIsLocked"
        return "LockLapsed" if prover == r.locker else None

    def _slash(self, r: Request) -> int:
        """Burn the lapsed lock's share; the rest, for its recipient."""
        burn = r.offer.lock_collateral * BURN_BPS // 10_000
        self.burned += burn
        return r.offer.lock_collateral - burn
