"""A training run's batch schedule: a Merkle tree over the batches' commitments."""

from __future__ import annotations

import pytest

from prover.chain.ledger import schedule_path, schedule_root
from prover.errors import InvalidInputError


def test_schedule_tree() -> None:
    words = [f"0x{i:064x}:0x{i + 100:064x}" for i in range(1, 6)]
    # Every batch's path leads to the one root (5 leaves, padded to 8: paths of 3).
    root = schedule_root(words)
    for position in range(5):
        assert len(schedule_path(words, position)) == 3
    assert schedule_root(words[:1]) != root and schedule_path(words[:1], 0) == []
    assert schedule_root(words[::-1]) != root  # the order is committed
    with pytest.raises(InvalidInputError, match="no batch 5"):
        schedule_path(words, 5)
    with pytest.raises(InvalidInputError, match="is not H"):
        schedule_root(["0x12"])
    with pytest.raises(InvalidInputError, match="at least one"):
        schedule_root([])
