"""Input and calibration data: ezkl's ``input.json`` format, input-name maps, nested lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from prover.circuits.ranges import check_calibration
from prover.circuits.tensors import TensorSpec
from prover.errors import InvalidInputError

Sample = list[np.ndarray]  # one flat float64 array per model input


def load_json(path: Path) -> Any:
    """Read a JSON data file, naming the file in any error."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise InvalidInputError(f"data file {str(path)!r} does not exist") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"data file {str(path)!r} is not valid JSON: {exc}") from exc


OUT_OF_RANGE = "a number out of range (a float64 holds at most about 1.8e308)"


def _not_a_float(value: Any, at: str = "", ints: bool = False) -> tuple[str, str] | None:
    """The position (``[i][j]``) of the first value a float64 must not be read from, and
    what it is: numpy would read ``true`` as 1.0 and ``"0.5"`` as 0.5, where JSON says
    neither is a number. With ``ints``, also an integer literal beyond float64 (looked for
    only once numpy overflowed: every other integer is then checked too)."""
    if isinstance(value, bool):
        return at, "a boolean, not a number"
    if isinstance(value, str):
        return at, "a string, not a number"
    if ints and isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            return at, OUT_OF_RANGE
    if isinstance(value, list) and (ints or not set(map(type, value)) <= {int, float}):
        for i, item in enumerate(value):
            found = _not_a_float(item, f"{at}[{i}]", ints)
            if found is not None:
                return found
    return None


def as_floats(value: Any, what: str) -> np.ndarray:
    """A (nested) JSON list of numbers as float64, in its own shape; ``InvalidInputError``
    names the first value that is no finite number, with its position."""
    found = _not_a_float(value)
    if found is not None:
        raise InvalidInputError(f"{what}{found[0]} is {found[1]}", position=found[0])
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"{what} must be a (nested) list of numbers of even shape: {exc}"
        ) from exc
    except OverflowError as exc:
        at, why = _not_a_float(value, ints=True) or ("", OUT_OF_RANGE)
        raise InvalidInputError(f"{what}{at} is {why}", position=at) from exc
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{what} contains NaN or infinite values")
    return arr


def _per_input(obj: Any, inputs: list[TensorSpec]) -> list[np.ndarray]:
    """Flat values for each model input, from any of the accepted layouts."""
    if isinstance(obj, dict) and "input_data" in obj:
        data = obj["input_data"]
        if not isinstance(data, list):
            raise InvalidInputError('"input_data" must be a list with one list per model input')
        if len(inputs) == 1 and data and not isinstance(data[0], list):
            data = [data]
    elif isinstance(obj, dict):
        missing = [t.name for t in inputs if t.name not in obj]
        if missing:
            raise InvalidInputError(
                f"data names no values for model input(s) {missing}; expected keys "
                f'{[t.name for t in inputs]} or an ezkl "input_data" list'
            )
        data = [obj[t.name] for t in inputs]
    elif isinstance(obj, list):
        data = [obj] if len(inputs) == 1 else obj
    else:
        raise InvalidInputError(
            'data must be ezkl\'s {"input_data": [...]}, an object keyed by input name, '
            "or nested lists"
        )
    if len(data) != len(inputs):
        raise InvalidInputError(
            f"the model has {len(inputs)} input(s) {[t.name for t in inputs]}; "
            f"data gives {len(data)}"
        )
    return [
        as_floats(d, f"input {t.name!r}").reshape(-1) for d, t in zip(data, inputs, strict=True)
    ]


def parse_sample(obj: Any, inputs: list[TensorSpec]) -> Sample:
    """One inference input; each input must hold exactly as many values as its shape."""
    arrays = _per_input(obj, inputs)
    for arr, spec in zip(arrays, inputs, strict=True):
        if arr.size != spec.size:
            raise InvalidInputError(
                f"input {spec.name!r} expects {spec.size} values (shape {list(spec.shape)}); "
                f"got {arr.size}",
                input=spec.name,
                expected=spec.size,
                got=int(arr.size),
            )
    return arrays


def parse_samples(obj: Any, inputs: list[TensorSpec]) -> list[Sample]:
    """Calibration data: one or more samples laid end to end for each input, each value
    one ezkl can hold."""
    arrays = _per_input(obj, inputs)
    counts = set()
    for arr, spec in zip(arrays, inputs, strict=True):
        if arr.size == 0 or arr.size % spec.size:
            raise InvalidInputError(
                f"calibration data for input {spec.name!r} holds {arr.size} values, "
                f"not a whole number of samples of {spec.size} (shape {list(spec.shape)})",
                input=spec.name,
            )
        counts.add(arr.size // spec.size)
    if len(counts) != 1:
        raise InvalidInputError("calibration data holds a different number of samples per input")
    n = counts.pop()
    samples = [[arr.reshape(n, -1)[i] for arr in arrays] for i in range(n)]
    check_calibration(samples, inputs)
    return samples


def to_ezkl_input(samples: list[Sample]) -> dict[str, list[list[float]]]:
    """ezkl's input.json object; several samples are laid end to end per input."""
    n_inputs = len(samples[0])
    return {
        "input_data": [np.concatenate([s[i] for s in samples]).tolist() for i in range(n_inputs)]
    }


def sample_digest_material(sample: Sample) -> list[list[float]]:
    """A canonical JSON-able form of a sample, for content digests."""
    return [arr.tolist() for arr in sample]
