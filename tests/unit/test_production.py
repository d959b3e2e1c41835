"""Production mode refuses development shortcuts before any work: the default chain key
when the settings load, a development SRS when a compile is planned."""

from __future__ import annotations

from pathlib import Path

import ezkl
import pytest
from pydantic import ValidationError

from helpers.models import calibration_data
from prover.circuits.compiler import CompileOptions, plan_compile
from prover.circuits.srs import resolve_srs, srs_source
from prover.config import Settings, mode_line
from prover.errors import SRSError

DEV_KEY = Settings.model_fields["private_key"].default
OWN_KEY = "0x" + "11" * 32


def test_development_is_the_default_and_allows_both(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.env == "development" and settings.private_key == DEV_KEY
    assert srs_source(settings.srs_path, settings.env == "production") == "dev"
    assert mode_line(settings).startswith("mode development")


@pytest.mark.parametrize("key", [DEV_KEY, DEV_KEY.upper().replace("0X", "0x"), DEV_KEY[2:]])
def test_production_refuses_the_default_chain_key(key: str) -> None:
    with pytest.raises(ValidationError, match="PROVER_PRIVATE_KEY"):
        Settings(env="production", private_key=key)


def test_production_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVER_ENV", "production")
    with pytest.raises(ValidationError, match="default development chain key"):
        Settings()
    monkeypatch.setenv("PROVER_PRIVATE_KEY", OWN_KEY)
    settings = Settings()
    assert settings.env == "production"
    line = mode_line(settings)
    assert line.startswith("mode production") and "PROVER_SRS_PATH" in line
    assert settings.environment()["PROVER_ENV"] == "production"  # `prover up`'s children


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValidationError, match="development"):
        Settings(env="staging")  # type: ignore[arg-type]


def test_production_refuses_a_development_srs(tmp_path: Path) -> None:
    with pytest.raises(SRSError, match="PROVER_SRS_PATH") as refused:
        srs_source(None, production=True)
    assert refused.value.details["setting"] == "PROVER_SRS_PATH"
    with pytest.raises(SRSError, match="PROVER_SRS_PATH"):
        resolve_srs(5, tmp_path, None, production=True)
    assert not (tmp_path / "srs").exists()  # nothing generated


def test_production_compile_is_refused_before_any_work(mlp_path: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", env="production", private_key=OWN_KEY)
    with pytest.raises(SRSError, match="set PROVER_SRS_PATH to a ceremony SRS"):
        plan_compile(mlp_path, calibration_data(), CompileOptions(), settings)
    assert not settings.data_dir.exists()

    ceremony = tmp_path / "ceremony.srs"
    ezkl.gen_srs(str(ceremony), 5)
    with_ceremony = settings.model_copy(update={"srs_path": ceremony})
    plan = plan_compile(mlp_path, calibration_data(), CompileOptions(), with_ceremony)
    development = Settings(data_dir=tmp_path / "data", srs_path=ceremony)
    same = plan_compile(mlp_path, calibration_data(), CompileOptions(), development)
    assert plan.circuit_id == same.circuit_id  # the mode is not part of what a circuit is
