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

    # Service: metadata database (default: SQLite under the data dir), broker, HTTP API.
    database_url: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    workers: int = 2  # worker processes started by `prover up`
    max_request_bytes: int = 8 * 1024 * 1024  # JSON bodies; uploads get max_model_bytes more
    # Clients (CLI --remote): where the service is and the key to use.
    api_url: str = "http://127.0.0.1:8000"
    api_key: str | None = None

    # Queue reliability. A job is held by a worker under a lease it renews while it works;
    # another worker may take the job over only once the lease has lapsed.
    job_lease_s: float = 30.0
    max_attempts: int = 3  # deliveries of one job (worker deaths included) before it fails
    # Redis redelivers an unacknowledged task after this long: longer than the longest job.
    visibility_timeout_s: int = 4 * 3600
    compile_time_limit_s: int = 3 * 3600  # hard limits; the soft limit is 90% of each
    prove_time_limit_s: int = 3600
    chain_time_limit_s: int = 600

    def environment(self) -> dict[str, str]:
        """These settings as ``PROVER_*`` variables, for processes that must share them."""
        env = {
            f"PROVER_{name.upper()}": str(value)
            for name, value in self.model_dump().items()
            if value is not None
        }
        return {**env, "PROVER_DATABASE_URL": self.sqlalchemy_url()}

    def sqlalchemy_url(self) -> str:
        """The metadata database URL (SQLite file under the data dir unless set)."""
        return self.database_url or f"sqlite:///{self.data_dir / 'prover.db'}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
