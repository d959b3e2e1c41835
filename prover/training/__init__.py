"""Proofs of training: one optimiser step of a small model exported as a provable graph."""

from prover.training.step_export import (
    StepSpec,
    export_sgd_step,
    flatten_params,
    one_hot,
    reference_step,
    unflatten_into,
)

__all__ = [
    "StepSpec",
    "export_sgd_step",
    "flatten_params",
    "one_hot",
    "reference_step",
    "unflatten_into",
]
