"""Input and calibration data formats, and the errors for data that does not fit."""

from __future__ import annotations

import numpy as np
import pytest

from prover.circuits.data import parse_sample, parse_samples, to_ezkl_input
from prover.circuits.tensors import TensorSpec
from prover.errors import InvalidInputError

ONE = [TensorSpec("x", (1, 4), "float32")]
TWO = [TensorSpec("a", (1, 2), "float32"), TensorSpec("b", (3,), "float32")]


@pytest.mark.parametrize(
    "obj",
    [
        {"input_data": [[1, 2, 3, 4]]},
        {"input_data": [1, 2, 3, 4]},
        [[1, 2, 3, 4]],
        [1, 2, 3, 4],
        [[1, 2], [3, 4]],
        {"x": [[1, 2, 3, 4]]},
    ],
)
def test_single_input_layouts(obj: object) -> None:
    (arr,) = parse_sample(obj, ONE)
    assert arr.tolist() == [1, 2, 3, 4]


def test_multi_input_layouts() -> None:
    for obj in (
        {"input_data": [[1, 2], [3, 4, 5]]},
        [[[1, 2]], [3, 4, 5]],
        {"b": [3, 4, 5], "a": [1, 2]},
    ):
        a, b = parse_sample(obj, TWO)
        assert a.tolist() == [1, 2] and b.tolist() == [3, 4, 5]


def test_wrong_length_names_input_and_shape() -> None:
    with pytest.raises(
        InvalidInputError, match=r"input 'x' expects 4 values \(shape \[1, 4\]\); got 5"
    ):
        parse_sample([1, 2, 3, 4, 5], ONE)


def test_wrong_input_count_and_names() -> None:
    with pytest.raises(InvalidInputError, match="2 input"):
        parse_sample({"input_data": [[1, 2]]}, TWO)
    with pytest.raises(InvalidInputError, match=r"\['b'\]"):
        parse_sample({"a": [1, 2]}, TWO)


def test_non_numeric_and_nan() -> None:
    with pytest.raises(InvalidInputError, match=r"input 'x'\[0\] is a string, not a number"):
        parse_sample(["a", "b", "c", "d"], ONE)
    with pytest.raises(InvalidInputError, match=r"\[1\] is a boolean, not a number"):
        parse_sample([1, True, 3, 4], ONE)  # numpy would take it as 1.0
    with pytest.raises(InvalidInputError, match="list of numbers"):
        parse_sample([1, [2], 3, 4], ONE)
    with pytest.raises(InvalidInputError, match="NaN"):
        parse_sample([1, 2, float("nan"), 4], ONE)
    with pytest.raises(InvalidInputError, match="ezkl"):
        parse_sample("1,2,3,4", ONE)


def test_calibration_samples_roundtrip() -> None:
    samples = parse_samples({"input_data": [list(range(12))]}, ONE)
    assert len(samples) == 3
    assert samples[2][0].tolist() == [8, 9, 10, 11]
    assert to_ezkl_input(samples) == {"input_data": [list(map(float, range(12)))]}
    nested = parse_samples(np.arange(8).reshape(2, 1, 4).tolist(), ONE)
    assert len(nested) == 2


def test_calibration_not_whole_samples() -> None:
    with pytest.raises(InvalidInputError, match="not a whole number of samples of 4"):
        parse_samples([1, 2, 3, 4, 5, 6], ONE)
