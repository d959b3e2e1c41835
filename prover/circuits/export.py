"""Export a PyTorch module to ONNX with defaults ezkl handles well."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

# tract (ezkl's ONNX loader) is tested on opsets 9-18.
DEFAULT_OPSET = 17


def export_onnx(
    module: torch.nn.Module,
    example_input: torch.Tensor | tuple[torch.Tensor, ...],
    path: Path,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Write ``module`` in eval mode as ONNX with fixed shapes and folded constants.

    Shapes are those of ``example_input`` (a circuit has fixed shapes; the leading axis is
    the batch). Returns the path written.
    """
    examples = example_input if isinstance(example_input, tuple) else (example_input,)
    input_names = input_names or (
        ["input"] if len(examples) == 1 else [f"input{i}" for i in range(len(examples))]
    )
    output_names = output_names or ["output"]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = module.training
    module.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", category=DeprecationWarning)
            torch.onnx.export(
                module,
                examples,
                str(path),
                input_names=input_names,
                output_names=output_names,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    finally:
        module.train(was_training)
    return path
