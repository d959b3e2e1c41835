"""What one worker may give one proof, as the workers advertise it.

Each worker advertises its memory for one job (``workers``: refreshed every lease period,
lapsing when it stops); a proof request is checked against the largest live one, so a
pool with one big worker accepts what only that worker can prove. With no worker
advertising (none started yet, or Redis away), the configured
``PROVER_WORKER_MEMORY_BYTES`` (else this machine's memory) stands in. A proof that needs
more than that is refused at the request (``check_capacity``).
"""

from __future__ import annotations

from typing import Any

from prover.config import Settings
from prover.errors import CapacityError
from prover.service.workers import live_workers, own_capacity
from prover.store import ArtifactStore


def pool_capacity(settings: Settings) -> int:
    """The largest memory a live worker advertises, else this process's own setting."""
    advertised = [int(w["memory_bytes"]) for w in live_workers(settings)]
    return max(advertised) if advertised else own_capacity(settings)


def proof_memory(store: ArtifactStore, circuit: dict[str, Any]) -> int | None:
    """The estimated peak memory of one proof job on a circuit: for a circuit in
    segments, its largest segment's (each segment is its own job); None if unknown."""
    records = [store.read_record("circuits", s["circuit_id"]) for s in circuit.get("segments", [])]
    needs = [(r.get("estimate") or {}).get("peak_memory_bytes") for r in records or [circuit]]
    known = [int(n) for n in needs if n]
    return max(known) if known else None


def check_capacity(store: ArtifactStore, circuit: dict[str, Any], capacity_bytes: int) -> None:
    """``CapacityError`` when a proof job on the circuit needs more memory than a worker
    may give it: refused now rather than failing on a worker that runs out."""
    need = proof_memory(store, circuit)
    if need is not None and need > capacity_bytes:
        raise CapacityError(
            f"a proof of circuit {circuit['id']} needs about {need / 2**30:.2f} GiB, more "
            f"than the largest worker has ({capacity_bytes / 2**30:.2f} GiB, "
            "PROVER_WORKER_MEMORY_BYTES); "
            "compile the model in segments (segments or max_logrows) to fit",
            need_bytes=need,
            capacity_bytes=capacity_bytes,
        )
