"""The job kinds, declared once.

A kind is a name, the queue its jobs go to, the type of row its ``subject_id`` names, the
runner that does its work on a worker, and what its end does to that row in the same
transaction. The queue routing (``worker.app``), the runner table (``execution``) and the
API's list of kinds all read ``KINDS``; adding a job kind means an entry here, its runner
(``runners``) and the route that creates it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, cast

from prover.config import Settings
from prover.errors import ProverError
from prover.service import jobs
from prover.service.grants import SubjectType
from prover.service.tables import Circuit, Proof
from prover.store import ArtifactStore

if TYPE_CHECKING:
    from prover.circuits.progress import Progress

QueueName = Literal["compile", "prove", "chain"]
QUEUES: tuple[QueueName, ...] = ("compile", "prove", "chain")
Runner = Callable[[jobs.Claim, ArtifactStore, Settings, "Progress"], dict[str, Any]]


@cache
def _resolve(path: str) -> Any:
    """The function a dotted path names, imported on first use."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class JobKind:
    """A kind's runner and end are functions or their dotted paths: the API, which only
    enqueues, declares every kind without importing the core (ezkl, onnxruntime, torch)
    that the runners and some ends use."""

    name: str
    queue: QueueName
    subject: SubjectType
    runner_ref: Runner | str
    on_end_ref: jobs.OnEnd | str

    @property
    def runner(self) -> Runner:
        ref = self.runner_ref
        return cast(Runner, _resolve(ref)) if isinstance(ref, str) else ref

    @property
    def on_end(self) -> jobs.OnEnd:
        ref = self.on_end_ref
        return cast(jobs.OnEnd, _resolve(ref)) if isinstance(ref, str) else ref


_RUN = "prover.service.runners."
KINDS: dict[str, JobKind] = {
    kind.name: kind
    for kind in (
        JobKind(
            "compile", "compile", "circuit", _RUN + "run_compile", jobs.subject_follows(Circuit)
        ),
        JobKind("prove", "prove", "proof", _RUN + "run_prove", jobs.subject_follows(Proof)),
        JobKind(
            "prove_batch",
            "prove",
            "batch",
            _RUN + "run_prove_batch",
            "prover.service.batching.batch_follows",
        ),
        JobKind("prove_segment", "prove", "proof", _RUN + "run_prove_segment", jobs.wake_parent),
        JobKind(
            "train_step",
            "prove",
            "run",
            _RUN + "run_train_step",
            "prover.service.training.advance_run",
        ),
        JobKind(
            "fed_round",
            "prove",
            "run",
            _RUN + "run_fed_round",
            "prover.service.federated.advance_federated",
        ),
        JobKind("client_step", "prove", "run", _RUN + "run_client_step", jobs.wake_parent),
        JobKind("deploy", "chain", "circuit", _RUN + "run_deploy", jobs.nothing_follows),
        JobKind("submit", "chain", "proof", _RUN + "run_submit", jobs.nothing_follows),
        JobKind("ledger", "chain", "run", _RUN + "run_ledger", jobs.nothing_follows),
        JobKind(
            "market",
            "chain",
            "circuit",
            "prover.service.market.run_market",
            jobs.nothing_follows,
        ),
    )
}


def job_kind(name: str) -> JobKind:
    """The declaration of a kind; a job of an undeclared kind is a bug, said plainly."""
    try:
        return KINDS[name]
    except KeyError:
        raise ProverError(
            f"job kind {name!r} is not declared in prover.service.kinds "
            f"(declared: {', '.join(KINDS)})"
        ) from None
