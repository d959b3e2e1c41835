"""The compile options a client may set: one definition for the API form, the CLI options,
the job a compile request becomes, and the core's ``CompileOptions``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prover.config import Settings
from prover.errors import InvalidInputError

if TYPE_CHECKING:  # the CLI reads these options at start; ezkl and onnx load only to compile
    from prover.circuits.compiler import CompileOptions

TensorVisibility = Literal["public", "private", "hashed", "polycommit"]
ParamVisibility = Literal["fixed", "private", "public", "hashed", "polycommit"]


class CompileRequest(BaseModel):
    """What a compile request may ask for; every field has the default a client gets."""

    model_config = ConfigDict(extra="forbid")

    input_visibility: TensorVisibility = Field("public", description="who sees the inputs")
    param_visibility: ParamVisibility = Field("fixed", description="who sees the weights")
    output_visibility: TensorVisibility = Field("public", description="who sees the outputs")
    tolerance: float | None = Field(
        None,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="max output error relative to max(1, |float output|), at most 1 (an "
        "error the output's own size: more would check nothing); default from config",
    )
    strategy: Literal["search", "ezkl-default"] = Field(
        "search", description="search (tune run args) or ezkl-default (ezkl's own calibration)"
    )
    objective: Literal["prove-time", "verify-gas"] = Field(
        "prove-time",
        description="what the finalists compete on: prove-time, or verify-gas (the least "
        "on-chain verification gas as a model fitted on measurements predicts it; the own "
        "verifier unless it is predicted over EIP-170's 24 KB)",
    )
    lookup_margin: float = Field(
        2.0,
        ge=1,
        le=16,
        allow_inf_nan=False,
        description="lookup tables cover the calibration range times this, at most 16 (each "
        "doubling costs about a bit more of lookup range)",
    )
    reusable_verifier: bool = Field(
        False, description="keys for ezkl's shared reusable EVM verifier (verifiers over 24 KB)"
    )

    segments: int | None = Field(
        None,
        ge=2,
        le=32,
        description="split the model into this many segments: one circuit each, proven by "
        "as many workers at once and linked by commitments",
    )
    max_logrows: int | None = Field(
        None,
        ge=8,
        le=26,
        description="split the model into as few segments as keep every one within 2^k rows",
    )

    fit_workers: bool = Field(
        False,
        description="split the model into as few segments as each prove within a worker's "
        "memory (PROVER_WORKER_MEMORY_BYTES of the largest worker; the machine's by default)",
    )
    batch_size: int | None = Field(
        None,
        ge=2,
        le=64,
        description="compile the model's batch-N variant (N copies of the graph): N inputs "
        "in one proof, whose N results go on chain in one transaction",
    )

    @property
    def segmented(self) -> bool:
        """Whether the request may split the model into segments."""
        return self.segments is not None or self.max_logrows is not None or self.fit_workers

    @classmethod
    def parse(cls, requested: dict[str, Any]) -> CompileRequest:
        """A request from plain values (None means the default); ``InvalidInputError``
        naming each bad field."""
        try:
            return cls.model_validate({k: v for k, v in requested.items() if v is not None})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise InvalidInputError(f"bad compile options: {problems}") from exc

    def core_options(self, settings: Settings) -> CompileOptions:
        """The core's options; the tolerance falls back to the configured one."""
        from prover.circuits.compiler import CompileOptions
        from prover.circuits.search import Visibility

        return CompileOptions(
            visibility=Visibility(
                self.input_visibility, self.param_visibility, self.output_visibility
            ),
            tolerance=float(self.tolerance or settings.tolerance),
            strategy=self.strategy,
            measure_top=settings.measure_top,
            lookup_margin=float(self.lookup_margin),
            reusable_verifier=self.reusable_verifier,
            objective=self.objective,
        )

    def settled(self, settings: Settings) -> dict[str, Any]:
        """Every field with the tolerance filled in: what a compile job carries, so that a
        worker with another default tolerance still builds the same circuit."""
        return {**self.model_dump(), "tolerance": self.core_options(settings).tolerance}
