"""A model's input or output as records keep it: light (numpy only), so the API can check
a request's shapes without loading onnx."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output with a fully known shape."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, item: dict) -> TensorSpec:
        """The spec a record keeps (``to_dict``'s form)."""
        return cls(item["name"], tuple(item["shape"]), item["dtype"])
