"""Cut points, balancing, request checks and link comparison of segmented circuits (no
proofs: the proving paths are in tests/integration/test_segments.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers.models import calibration_data, fixed_graph
from prover.circuits import segments
from prover.circuits.compiler import CompileOptions, CompilePlan
from prover.circuits.cuts import balanced_cuts, cut_candidates, plan_cuts
from prover.circuits.segments import SegmentedPlan, plan_any, plan_segmented
from prover.config import Settings
from prover.errors import InvalidInputError
from prover.proving.composite import link_failure


def make_residual(path: Path) -> Path:
    """4 -> 8, a residual block (Linear + ReLU added to its input), -> 2."""
    import torch

    from prover.circuits.export import export_onnx

    class Residual(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = torch.nn.Linear(4, 8)
            self.inner = torch.nn.Linear(8, 8)
            self.last = torch.nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.first(x)
            return self.last(torch.relu(self.inner(h)) + h)

    torch.manual_seed(0)
    return export_onnx(Residual(), torch.zeros(1, 4), path)


def test_cut_candidates_of_a_chain_are_every_intermediate_tensor(mlp_path: Path) -> None:
    assert cut_candidates(fixed_graph(mlp_path)) == ["/0/Gemm_output_0", "/1/Relu_output_0"]


def test_no_cut_inside_a_residual_block(tmp_path: Path) -> None:
    model = fixed_graph(make_residual(tmp_path / "residual.onnx"))
    found = cut_candidates(model)
    add = next(n for n in model.graph.node if n.op_type == "Add")
    inner = next(n for n in model.graph.node if n.op_type == "Relu")
    # Before the block and after the Add; never between (the skip tensor is also live).
    assert found == [model.graph.node[0].output[0], add.output[0]]
    assert inner.output[0] not in found


def test_balanced_cuts_minimise_the_largest_segment() -> None:
    prefix, total = [10, 20, 90], 100
    assert balanced_cuts(prefix, total, 1) == []
    assert balanced_cuts(prefix, total, 2) == [1]  # 20 | 80 beats 10 | 90 and 90 | 10
    assert balanced_cuts(prefix, total, 3) == [1, 2]  # 20 | 70 | 10
    assert balanced_cuts(prefix, total, 4) == [0, 1, 2]


def test_plan_cuts_refuses_more_segments_than_cut_points(
    mlp_path: Path, settings: Settings
) -> None:
    # Estimated cells: Gemm 4x8 = 32, ReLU 8, Gemm 8x2 = 16: 32 | 24 beats 40 | 16.
    graph = fixed_graph(mlp_path)
    assert plan_cuts(graph, 2, None, settings).tensors == ("/0/Gemm_output_0",)
    with pytest.raises(InvalidInputError, match="at most 3 segments"):
        plan_cuts(graph, 4, None, settings)
    with pytest.raises(InvalidInputError, match="number of segments or a max_logrows"):
        plan_cuts(graph, None, None, settings)


@pytest.mark.slow  # ezkl lays out each candidate segment (in a child)
def test_plan_cuts_by_max_logrows(mlp_path: Path, settings: Settings) -> None:
    graph = fixed_graph(mlp_path)
    assert plan_cuts(graph, None, 20, settings).tensors == ()  # fits in one circuit
    with pytest.raises(InvalidInputError, match="over max_logrows 4") as info:
        plan_cuts(graph, None, 4, settings)
    assert info.value.details["needed_logrows"] > 4
    with pytest.raises(InvalidInputError, match="ask for more segments"):
        plan_cuts(graph, 2, 4, settings)


@pytest.mark.slow  # the automatic link choice lays out each segment (in a child)
def test_plan_segmented_checks_the_request(mlp_path: Path, settings: Settings) -> None:
    data = calibration_data(4)
    with pytest.raises(InvalidInputError, match="link 'encrypted'"):
        plan_segmented(mlp_path, data, CompileOptions(), settings, 2, link="encrypted")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="needs the settings search"):
        plan_segmented(mlp_path, data, CompileOptions(strategy="ezkl-default"), settings, 2)
    with pytest.raises(InvalidInputError, match="fits max_logrows in one circuit"):
        plan_segmented(mlp_path, data, CompileOptions(), settings, max_logrows=20)
    first = plan_segmented(mlp_path, data, CompileOptions(), settings, 2)
    hashed = plan_segmented(mlp_path, data, CompileOptions(), settings, 2, link="hashed")
    three = plan_segmented(mlp_path, data, CompileOptions(), settings, 3)
    again = plan_segmented(mlp_path, data, CompileOptions(), settings, 2)
    assert first.circuit_id == again.circuit_id
    # auto: the two halves need the same k, so one commitment column beats hashing.
    assert first.link == "polycommit" and "polycommit costs" in first.link_reason
    explicit = plan_segmented(mlp_path, data, CompileOptions(), settings, 2, link="polycommit")
    assert explicit.circuit_id == first.circuit_id  # the same circuit, however chosen
    assert len({first.circuit_id, hashed.circuit_id, three.circuit_id}) == 3


def test_plan_any_runs_intake_once(
    mlp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A split request's intake (a sandboxed child) runs once; its plan is the one
    ``plan_segmented`` makes on its own."""
    planned = []
    intake = segments.plan_compile

    def counted(*args: Any) -> CompilePlan:
        planned.append(args)
        return intake(*args)

    monkeypatch.setattr(segments, "plan_compile", counted)
    # The link as choose_link would pick it, without laying the segments out (slow).
    monkeypatch.setattr(segments, "choose_link", lambda *_: ("polycommit", "stub"))
    data = calibration_data(4)
    split = plan_any(mlp_path, data, CompileOptions(), settings, segments=2)
    assert len(planned) == 1
    alone = plan_segmented(mlp_path, data, CompileOptions(), settings, 2)
    assert len(planned) == 2
    assert isinstance(split, SegmentedPlan) and split.cuts == ("/0/Gemm_output_0",)
    assert split.circuit_id == alone.circuit_id
    assert split.calibration_digest == alone.calibration_digest


def _proof(points: list[int], instances: list[str] | None = None) -> dict:
    """A proof JSON whose transcript starts with one 64-byte point per given byte value."""
    raw = [b for p in points for b in [p] * 64] + [0] * 32
    return {"proof": raw, "instances": [instances or []]}


COUNTS = {"inputs": 1, "params": 0, "outputs": 1}


def test_polycommit_link_compares_output_and_input_commitments() -> None:
    left, right = _proof([1, 7]), _proof([7, 9])
    assert link_failure("polycommit", left, right, (COUNTS, COUNTS)) is None
    assert "output commitment differs" in str(
        link_failure("polycommit", left, _proof([8, 9]), (COUNTS, COUNTS))
    )
    first = {"inputs": 0, "params": 0, "outputs": 1}  # a public-input first segment
    assert link_failure("polycommit", _proof([7]), right, (first, COUNTS)) is None
    assert "expose 1 and 0" in str(
        link_failure("polycommit", left, right, (COUNTS, {**COUNTS, "inputs": 0}))
    )


def test_hashed_link_compares_output_and_input_hashes() -> None:
    left = _proof([], ["0x01", "0x02", "0xaa"])  # public inputs, then the output hash
    right = _proof([], ["0xaa", "0x05"])
    assert link_failure("hashed", left, right, (COUNTS, COUNTS)) is None
    wrong = _proof([], ["0xab", "0x05"])
    assert "output hash differs" in str(link_failure("hashed", left, wrong, (COUNTS, COUNTS)))
