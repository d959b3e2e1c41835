"""Compiles refused before any proof: bad options, an unusable ceremony SRS, an unsupported
operator; none leaves a circuit behind (integration/test_pipeline.py proves for real)."""

from __future__ import annotations

from pathlib import Path

import ezkl
import pytest

from helpers.models import calibration_data
from prover.circuits.compiler import CompileOptions, compile_model
from prover.circuits.search import SearchSpace, Visibility
from prover.config import Settings
from prover.errors import InvalidInputError, SRSError, UnsupportedOperatorError
from prover.store import ArtifactStore

SMALL = SearchSpace(scales=(10,), legs=(3,), inner_cols=(2,))


def test_bad_visibility_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="input visibility 'secret'"):
        Visibility("secret")


def test_unusable_ceremony_srs(mlp_path: Path, tmp_path: Path) -> None:
    small = tmp_path / "small.srs"
    ezkl.gen_srs(str(small), 5)
    garbage = tmp_path / "garbage.srs"
    garbage.write_bytes(b"\x0c\x00\x00\x00not an srs")
    cases = (
        (small, "has 2\\^5 points"),
        (garbage, "not a raw halo2 KZG SRS"),
        (tmp_path / "missing.srs", "does not exist"),
    )
    for srs, message in cases:
        settings = Settings(data_dir=tmp_path / "data", srs_path=srs, measure_top=1)
        store = ArtifactStore(settings.data_dir)
        with pytest.raises(SRSError, match=message):
            compile_model(
                mlp_path, calibration_data(), CompileOptions(space=SMALL), store, settings
            )
        assert store.list_records("circuits") == []


def test_failed_compile_leaves_nothing(
    tmp_path: Path, settings: Settings, store: ArtifactStore
) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph(
        [helper.make_node("IsNaN", ["x"], ["n"]), helper.make_node("Cast", ["n"], ["y"], to=1)],
        "g",
        [x],
        [y],
    )
    path = tmp_path / "isnan.onnx"
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path
    )
    with pytest.raises(UnsupportedOperatorError, match="IsNaN"):
        compile_model(path, None, CompileOptions(space=SMALL), store, settings)
    assert store.list_records("circuits") == [] and store.list_records("models") == []
