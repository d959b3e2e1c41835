"""One settings object, read from ``PROVER_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "prover"


class Settings(BaseSettings):
    """Runtime configuration; every field can be set as ``PROVER_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="PROVER_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    # A ceremony SRS file (raw halo2 KZG params of 2^k); when unset a development SRS is made.
    srs_path: Path | None = None

    # Chain: any EVM JSON-RPC endpoint; the default is a local anvil and its first
    # development account (a well-known key: never fund it on a real chain).
    rpc_url: str = "http://127.0.0.1:8545"
    private_key: str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"

    # Intake limits: refuse before any long work starts.
    max_model_bytes: int = 64 * 1024 * 1024
    max_parameters: int = 2_000_000
    max_input_elements: int = 65_536
    max_logrows: int = 22

    # Settings search.
    tolerance: float = 0.01
    measure_top: int = 3  # finalists (best per column count) proven for real during compile
    calibration_samples: int = 16


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
