"""One settings object, read from ``PROVER_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "prover"


class Settings(BaseSettings):
    """Runtime configuration; every field can be set as ``PROVER_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="PROVER_", extra="ignore")

    # production refuses what only development may use: a development SRS (compile fails)
    # and the default chain key (these settings fail to load). See ``mode_line``.
    env: Literal["development", "production"] = "development"
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
    # Every tensor the graph computes, bounded before anything runs it (a 131-byte Expand
    # can ask for 10^9 values): the largest one, all of them together, and the circuit's
    # estimated cells (output values, multiply-accumulates for matmuls and convolutions).
    max_tensor_elements: int = 2**21
    max_total_elements: int = 2**24
    max_circuit_cells: int = 2**28  # 16x what 2^max_logrows rows of 4 columns hold
    # Intake parses, checks with ezkl and runs the float reference in a child process under
    # these limits, so a hostile file takes down neither the API nor a worker.
    intake_memory_bytes: int = 4 * 1024**3
    intake_time_s: float = 120.0
    # A compile's ezkl work runs in a child under this address-space limit; unset: 3/4 of
    # the machine's memory.
    compile_memory_bytes: int | None = None

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
    # A worker host: the name or address other hosts reach it at (default: its host name),
    # which labels its workers in /health; with worker_metrics_port, each worker serves
    # its Prometheus metrics at http://<worker_address>:<port>/metrics (/metrics/targets
    # lists them for Prometheus's http_sd). Unset: the API's /metrics covers this host.
    worker_address: str | None = None
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    max_request_bytes: int = 8 * 1024 * 1024  # JSON bodies; uploads get max_model_bytes more
    max_header_bytes: int = 64 * 1024  # a request's headers, all together (over: 431)
    # The artifact store shared by hosts: an S3-compatible object store (s3://bucket/prefix;
    # endpoint and credentials from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    # AWS_REGION). When set, data_dir holds this host's cache of it, its entries evicted least
    # recently used past cache_bytes (unset: kept). Files past store_part_bytes move in parts.
    store_url: str | None = None
    cache_bytes: int | None = None
    store_part_bytes: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024)
    # Clients (CLI --remote): where the service is and the key to use.
    api_url: str = "http://127.0.0.1:8000"
    api_key: str | None = None
    # Quotas per API key, answered 429 with Retry-After; 0 turns one off. The rate is a
    # token bucket in Redis shared by every API process (per process while Redis is away).
    max_jobs_in_flight: int = 100  # queued + running jobs the key created
    rate_limit_per_s: float = 20.0  # requests per second, sustained
    rate_limit_burst: int = 100  # requests at once (the bucket's size)

    # Queue reliability. A job is held by a worker under a lease it renews while it works;
    # another worker may take the job over only once the lease has lapsed.
    job_lease_s: float = 30.0
    max_attempts: int = 3  # deliveries of one job (worker deaths included) before it fails
    # Redis redelivers an unacknowledged task after this long: longer than the longest job.
    visibility_timeout_s: int = 4 * 3600
    compile_time_limit_s: int = 3 * 3600  # hard limits; the soft limit is 90% of each
    prove_time_limit_s: int = 3600
    chain_time_limit_s: int = 600
    # Transient faults (chain, database or broker away): a job waits with exponential backoff
    # (doubling from transient_backoff_s, capped) and fails with the fault's own code only
    # once it has been failing for transient_deadline_s. These retries are not attempts.
    transient_deadline_s: float = 3600.0
    transient_backoff_s: float = 2.0
    transient_backoff_max_s: float = 120.0
    # A job queued this long with no message in the broker (Redis restarted and lost it) is
    # sent again by the workers' sweep.
    requeue_after_s: float = 120.0
    # Job events (GET /v1/events) are kept this long: a client may resume within it.
    event_retention_s: float = 7 * 24 * 3600.0
    # Webhooks (prover.service.webhooks): an endpoint on a loopback, link-local, private or
    # reserved address is refused unless allowed (a receiver on this host, in development).
    # A failed delivery is tried again after a random delay up to base * 2^(attempt - 1),
    # capped, until retry_for_s after its event; the dispatcher looks for due ones this often.
    webhook_allow_private: bool = False
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_retry_base_s: float = Field(default=1.0, gt=0)
    webhook_retry_max_s: float = Field(default=3600.0, gt=0)
    webhook_retry_for_s: float = Field(default=24 * 3600.0, ge=0)
    webhook_poll_s: float = Field(default=0.2, gt=0)
    # A parent job (a proof in segments) waiting for its children looks again this often;
    # a child's end wakes it at once, so this is only the fallback.
    child_poll_s: float = 15.0
    # The memory one worker may give one proof (a circuit's or a segment's estimated
    # peak); unset: the machine's. A proof that needs more is refused, naming both.
    worker_memory_bytes: int | None = None
    # Dynamic batching (a proof request with ``batching``, on a batch circuit): one key's
    # requests for one circuit arriving within the window are proven in one batch proof
    # of at most this many (and the circuit's N); a lone request waits the window at most.
    batch_window_ms: int = Field(default=2000, ge=0, le=600_000)
    batch_max: int = Field(default=64, ge=1, le=64)

    @model_validator(mode="after")
    def _production_key(self) -> Settings:
        """Production refuses anvil's well-known key: anyone can send from its account."""
        default = type(self).model_fields["private_key"].default
        if self.env == "production" and _key_hex(self.private_key) == _key_hex(default):
            raise ValueError(
                "production mode (PROVER_ENV=production) refuses the default development "
                "chain key (anvil's well-known account): set PROVER_PRIVATE_KEY to your "
                "own sending account's key"
            )
        return self

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


def _key_hex(key: str) -> str:
    return key.strip().lower().removeprefix("0x")


def mode_line(settings: Settings) -> str:
    """The line the API, a worker and ``prover up`` say at start: which mode, and what it
    enforces, so an operator sees at once whether development shortcuts are allowed."""
    if settings.env == "production":
        return (
            "mode production: a ceremony SRS is required (PROVER_SRS_PATH; development SRS "
            "refused) and the default development chain key is refused"
        )
    return (
        "mode development: development SRS and anvil's default chain key allowed, NOT for "
        "production (set PROVER_ENV=production to refuse both)"
    )


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
