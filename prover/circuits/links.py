"""How consecutive segments are linked: what their proofs expose of a cut tensor.

``polycommit`` (a KZG commitment, nearly free in rows, one logrows for the whole chain)
or ``hashed`` (a Poseidon hash as a public instance, each segment keeping its own logrows
at the hash's cost in rows); ``choose_link`` picks the cheaper for a model's cuts.
"""

from __future__ import annotations

import math
from typing import Literal

import onnx

from prover.circuits.cuts import Cuts, needed_logrows

Link = Literal["polycommit", "hashed"]
LINKS: tuple[Link, ...] = ("polycommit", "hashed")
LinkChoice = Literal["auto", "polycommit", "hashed"]
# Rows of ezkl's Poseidon chip per hashed value (ezkl 23.0.5: 658 rows hash 16 values).
_POSEIDON_ROWS_PER_VALUE = 41
# A hashed segment's rows cost more: Poseidon adds its own columns (measured: about 1.5-2x
# the prove time of the same segment with a polycommit link, at equal logrows).
_HASHED_COST_FACTOR = 2


def _elements(model: onnx.ModelProto, tensor: str) -> int:
    value = next(v for v in model.graph.value_info if v.name == tensor)
    return math.prod(d.dim_value for d in value.type.tensor_type.shape.dim)


def choose_link(model: onnx.ModelProto, cuts: Cuts) -> tuple[Link, str]:
    """(link, why): polycommit unless giving every segment the largest one's logrows costs
    more rows than hashing the cut tensors (Poseidon rows per value, weighted for its extra
    columns). polycommit costs one unblinded column per cut but one k for the whole chain;
    hashed lets each segment keep its own k but hashes every value crossing a cut."""
    needed = cuts.logrows
    sizes = [_elements(model, c) for c in cuts.tensors]
    poly = len(needed) * 2 ** max(needed)
    hashed = 0
    for i, k in enumerate(needed):
        values = (sizes[i - 1] if i > 0 else 0) + (sizes[i] if i < len(sizes) else 0)
        hash_k = needed_logrows(_POSEIDON_ROWS_PER_VALUE * values)
        hashed += _HASHED_COST_FACTOR * 2 ** max(k, hash_k)
    link: Link = "polycommit" if poly <= hashed else "hashed"
    why = (
        f"estimated segment logrows {list(needed)}, cut sizes {sizes}: polycommit costs ~{poly} "
        f"rows (every segment at 2^{max(needed)}), hashed ~{hashed} (weighted x"
        f"{_HASHED_COST_FACTOR} for Poseidon's columns)"
    )
    return link, why


def link_values(witness: dict, link: str) -> dict[str, int]:
    """How many link values a segment's proof exposes for its inputs, params and outputs:
    commitment points at the head of the proof (polycommit), or hash instances (hashed)."""
    field_name = "polycommit" if link == "polycommit" else "poseidon_hash"
    counts = {}
    for part in ("inputs", "params", "outputs"):
        found = (witness.get(f"processed_{part}") or {}).get(field_name) or []
        counts[part] = sum(len(points) for points in found) if link == "polycommit" else len(found)
    return counts
