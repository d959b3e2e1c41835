"""Where a model is cut into segments, and how large each segment is.

A cut is a point where a single tensor carries everything the rest of the graph needs.
The cuts balance the segments' estimated cost, or are the fewest that keep each segment
within a row budget; a segment's size is ezkl's row count at its default settings.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ezkl
import numpy as np
import onnx
from onnx.utils import Extractor

from prover.circuits.compiler import compile_limits
from prover.circuits.sandbox import run_limited
from prover.circuits.search import RESERVED_ROWS
from prover.circuits.shapes import measure_fixed
from prover.config import Settings
from prover.errors import InvalidInputError


def cut_candidates(model: onnx.ModelProto) -> list[str]:
    """Tensors that alone carry everything the rest of the graph needs, in graph order.

    After each node, the live tensors are those computed so far (or the model inputs) that
    a later node or the model's outputs still read; constants do not count (a segment
    carries its own). A point where exactly one non-output tensor is live is a cut.
    """
    graph = model.graph
    constant = {t.name for t in graph.initializer}
    for node in graph.node:
        if all(not i or i in constant for i in node.input):
            constant.update(o for o in node.output if o)
    last_use: dict[str, int] = {}
    for j, node in enumerate(graph.node):
        for name in node.input:
            last_use[name] = j
    outputs = {o.name for o in graph.output}
    live = {i.name for i in graph.input if i.name not in constant}
    found: list[str] = []
    for j, node in enumerate(graph.node[:-1]):
        live |= {o for o in node.output if o and o not in constant}
        live = {t for t in live if t in outputs or last_use.get(t, -1) > j}
        if len(live) == 1 and not live & outputs:
            (tensor,) = live
            if tensor not in found and _shaped(model, tensor):
                found.append(tensor)
    return found


def _shaped(model: onnx.ModelProto, tensor: str) -> bool:
    for value in model.graph.value_info:
        if value.name == tensor:
            dims = value.type.tensor_type.shape.dim
            return bool(dims) and all(d.HasField("dim_value") for d in dims)
    return False


def _bounds(model: onnx.ModelProto, cuts: list[str]) -> list[tuple[list[str], list[str]]]:
    """(input names, output names) of each segment the cuts make."""
    constant = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in constant]
    outputs = [o.name for o in model.graph.output]
    edges = [inputs, *[[c] for c in cuts], outputs]
    return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def write_segments(model: onnx.ModelProto, cuts: list[str], directory: Path) -> list[Path]:
    """Each segment the cuts make, as its own ONNX file ``directory/segment<i>.onnx``."""
    paths = []
    for i, (inputs, outputs) in enumerate(_bounds(model, cuts)):
        path = directory / f"segment{i}.onnx"
        onnx.save(Extractor(model).extract_model(inputs, outputs), str(path))
        paths.append(path)
    return paths


def _prefix_costs(model: onnx.ModelProto, candidates: list[str]) -> tuple[list[int], int]:
    """Estimated circuit cells up to each candidate cut, and of the whole model: at a cut
    every earlier node is upstream of it (one tensor carries the state), so a prefix is
    the cells of the nodes before it in graph order."""
    sizes = measure_fixed(model)
    produced_at = {o: j for j, node in enumerate(model.graph.node) for o in node.output}
    running = np.cumsum([0, *sizes.node_cells])
    prefix = [int(running[min(produced_at[c] + 1, len(running) - 1)]) for c in candidates]
    return prefix, sizes.cells


def balanced_cuts(prefix: list[int], total: int, parts: int) -> list[int]:
    """Indices of ``parts - 1`` candidates minimising the largest segment's cost (DP)."""
    points = [0, *prefix, total]
    n = len(points)
    inf = float("inf")
    # best[k][j]: the smallest max cost of k segments covering 0..points[j], ending at j.
    best = [[inf] * n for _ in range(parts + 1)]
    back = [[0] * n for _ in range(parts + 1)]
    best[0][0] = 0
    for k in range(1, parts + 1):
        for j in range(1, n):
            for i in range(j):
                cost = max(best[k - 1][i], points[j] - points[i])
                if cost < best[k][j]:
                    best[k][j], back[k][j] = cost, i
    chosen, j = [], n - 1
    for k in range(parts, 1, -1):
        j = back[k][j]
        chosen.append(j - 1)
    return sorted(chosen)


def estimate_rows(segment_paths: list[str]) -> list[int]:
    """ezkl's row count for each segment file at its default settings (run in a child)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="prover-rows-") as tmp:
        for i, path in enumerate(segment_paths):
            out = Path(tmp) / f"settings{i}.json"
            args = ezkl.PyRunArgs()
            args.variables = [("batch_size", 1)]  # type: ignore[attr-defined]
            ezkl.gen_settings(path, str(out), py_run_args=args)
            rows.append(int(json.loads(out.read_text())["num_rows"]))
    return rows


def needed_logrows(rows: int) -> int:
    """The logrows that hold ``rows`` and the rows ezkl reserves."""
    return math.ceil(math.log2(rows + RESERVED_ROWS))


def segment_logrows(model: onnx.ModelProto, cuts: list[str], settings: Settings) -> list[int]:
    """The logrows each segment needs, estimated from ezkl's layout at default settings."""
    with tempfile.TemporaryDirectory(prefix="prover-cuts-") as tmp:
        paths = [str(p) for p in write_segments(model, cuts, Path(tmp))]
        rows = run_limited(estimate_rows, paths, limits=compile_limits(settings))
    return [needed_logrows(r) for r in rows]


@dataclass(frozen=True)
class Cuts:
    """Where a model is cut, and the logrows each segment is estimated to need."""

    tensors: tuple[str, ...]
    logrows: tuple[int, ...]


def plan_cuts(
    model: onnx.ModelProto, segments: int | None, max_logrows: int | None, settings: Settings
) -> Cuts:
    """Cuts of ``model`` (``ModelInfo.fixed_graph``) for ``segments`` segments of balanced
    estimated cost; with only ``max_logrows``, the fewest segments whose estimated rows each
    fit 2^max_logrows (no cut when the whole model does).

    Raises ``InvalidInputError`` when the model has too few cut points for K, or when a
    segment cannot fit ``max_logrows`` (naming the segment and the rows it needs).
    """
    candidates = cut_candidates(model)
    if segments is None and max_logrows is None:
        raise InvalidInputError("give the number of segments or a max_logrows to split to")
    if segments is not None and not 1 <= segments <= len(candidates) + 1:
        raise InvalidInputError(
            f"the model can be cut into at most {len(candidates) + 1} segments (it has "
            f"{len(candidates)} single-tensor cut points: {candidates[:8]}); asked for {segments}",
            cut_points=len(candidates),
        )
    prefix, total = _prefix_costs(model, candidates)
    options = [segments] if segments is not None else range(1, len(candidates) + 2)
    needed: list[int] = []
    for parts in options:
        cuts = [candidates[i] for i in balanced_cuts(prefix, total, parts)]
        needed = segment_logrows(model, cuts, settings)
        if max_logrows is None or max(needed) <= max_logrows:
            return Cuts(tuple(cuts), tuple(needed))
    worst = int(np.argmax(needed))
    raise InvalidInputError(
        f"segment {worst} of {len(needed)} needs about 2^{needed[worst]} rows, over max_logrows "
        f"{max_logrows}"
        + (
            "; ask for more segments"
            if segments is not None
            else "; the model has no cut "
            "point inside it (cuts are where one tensor carries the whole state)"
        ),
        segment=worst,
        needed_logrows=needed[worst],
        max_logrows=max_logrows,
    )


def split_saving(model: onnx.ModelProto, cuts: Cuts, settings: Settings) -> str | None:
    """Why splitting at ``cuts`` saves nothing, or ``None`` when it saves: a prover's memory
    and time follow its circuit's 2^logrows rows, so a split pays only when its largest
    segment needs fewer rows than the whole model (every segment of a polycommit chain is
    laid out on the largest one's rows, and a hashed one adds Poseidon's)."""
    (whole,) = segment_logrows(model, [], settings)
    largest = max(cuts.logrows)
    if largest < whole:
        return None
    return (
        f"this split saves nothing: its largest segment needs about 2^{largest} rows "
        f"(estimated per segment: {list(cuts.logrows)}), as many as the whole model "
        f"(2^{whole}), so each segment's prover needs as much memory and time as one unsplit "
        "proof; compile it unsplit, or ask for more segments"
    )
