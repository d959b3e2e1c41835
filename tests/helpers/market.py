"""ProofMarket's rules in Python, for the property test: what each action should do on
chain, to the wei: the contract's error, or (None) what it settles."""

from __future__ import annotations

from dataclasses import dataclass, field

from prover.chain.market import Offer

BURN_BPS = 5000  # ProofMarket.BURN_BPS


@dataclass
class Request:
    requester: str
    offer: Offer
    input: int  # which of the test's inputs it asks about
    status: str = "open"
    prover: str | None = None  # the locker, then whoever fulfilled
    price: int = 0
    locked: bool = False
    slashed: bool = False
    paid: set[str] = field(default_factory=set)  # "prover", "requester": shares claimed

    def shares(self) -> dict[str, int]:
        """The prover's and the requester's shares, once settled."""
        if self.status not in ("fulfilled", "expired"):
            return {"prover": 0, "requester": 0}
        collateral = self.offer.lock_collateral if self.locked else 0
        reward = collateral - collateral * BURN_BPS // 10_000 if self.slashed else 0
        if self.status == "expired":
            return {"prover": 0, "requester": self.offer.max_price + reward}
        if self.slashed:
            return {"prover": reward, "requester": self.offer.max_price}
        return {"prover": self.price + collateral, "requester": self.offer.max_price - self.price}

    def roles(self, account: str) -> list[str]:
        return [role for role in ("prover", "requester") if getattr(self, role) == account]

    def owed(self, account: str) -> int:
        shares = self.shares()
        return sum(shares[role] for role in self.roles(account) if role not in self.paid)


@dataclass
class Model:
    """The market's expected state; each action at block time ``t`` returns the error the
    contract should raise (and changes nothing), or None (and applies its effects)."""

    requests: dict[int, Request] = field(default_factory=dict)
    burned: int = 0
    deposited: int = 0
    claimed: int = 0
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
        r.status, r.prover, r.price, r.locked = "locked", prover, r.offer.price_at(t), True
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
        if r.status == "open":
            r.price = r.offer.price_at(t)
        elif t > r.offer.lock_deadline:
            r.price = 0
            self._slash(r)
        r.status, r.prover = "fulfilled", prover
        self.accepted.add(proof_input)
        return None

    def expire(self, request_id: int, t: int) -> str | None:
        r = self.requests.get(request_id)
        if r is None or r.status not in ("open", "locked"):
            return "NotOpen"
        if t <= r.offer.deadline:
            return "NotExpired"
        if r.status == "locked":
            self._slash(r)
        r.status = "expired"
        return None

    def claim(self, account: str, request_id: int) -> str | None:
        r = self.requests.get(request_id)
        owed = r.owed(account) if r else 0
        if r is None or owed == 0:
            return "NothingToClaim"
        r.paid.update(r.roles(account))
        self.claimed += owed
        return None

    def unclaimed(self) -> int:
        """Every settled request's shares not yet claimed."""
        return sum(
            share
            for r in self.requests.values()
            for role, share in r.shares().items()
            if role not in r.paid
        )

    def _lock_refusal(self, r: Request, prover: str, t: int) -> str | None:
        if r.status != "locked":
            return None
        if t <= r.offer.lock_deadline:
            return None if prover == r.prover else "RequestIsLocked"
        return "LockLapsed" if prover == r.prover else None

    def _slash(self, r: Request) -> None:
        """Burn the lapsed lock's share; the rest is for whoever it is paid to."""
        self.burned += r.offer.lock_collateral * BURN_BPS // 10_000
        r.slashed = True
