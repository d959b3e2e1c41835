"""The job kinds, declared once.

A kind is a name, the queue its jobs go to, the type of row its ``subject_id`` names, the
runner that does its work on a worker, and what its end does to that row in the same
transaction. The queue routing (``worker.app``), the runner table (``execution``) and the
API's list of kinds all read ``KINDS``; adding a job kind means an entry here, its runner
(``runners``) and the route that creates it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from prover.config import Settings
from prover.errors import ProverError
from prover.service import batching, federated, jobs, runners, training
from prover.service.grants import SubjectType
from prover.service.tables import Circuit, Proof
from prover.store import ArtifactStore

QueueName = Literal["compile", "prove", "chain"]
QUEUES: tuple[QueueName, ...] = ("compile", "prove", "chain")
Runner = Callable[[jobs.Claim, ArtifactStore, Settings, runners.Track], dict[str, Any]]


@dataclass(frozen=True)
class JobKind:
    name: str
    queue: QueueName
    subject: SubjectType
    runner: Runner
    on_end: jobs.OnEnd


KINDS: dict[str, JobKind] = {
    kind.name: kind
    for kind in (
        JobKind(
            "compile", "compile", "circuit", runners.compile_circuit, jobs.subject_follows(Circuit)
        ),
        JobKind("prove", "prove", "proof", runners.prove_inference, jobs.subject_follows(Proof)),
        JobKind("prove_batch", "prove", "batch", runners.prove_batch, batching.batch_follows),
        JobKind("prove_segment", "prove", "proof", runners.prove_segment, jobs.wake_parent),
        JobKind("train_step", "prove", "run", runners.prove_step, training.advance_run),
        JobKind("fed_round", "prove", "run", runners.prove_round, federated.advance_federated),
        JobKind("client_step", "prove", "run", runners.prove_client_step, jobs.wake_parent),
        JobKind("deploy", "chain", "circuit", runners.deploy_verifier, jobs.nothing_follows),
        JobKind("submit", "chain", "proof", runners.submit_result, jobs.nothing_follows),
        JobKind("ledger", "chain", "run", runners.put_run_on_ledger, jobs.nothing_follows),
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
