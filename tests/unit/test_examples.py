"""The shipped example models are there (integration/test_models.py proves each one)."""

from __future__ import annotations

from helpers.files import EXAMPLES


def test_examples_present() -> None:
    assert {"digits_mlp", "digits_cnn", "digits_attention"} <= set(EXAMPLES)
