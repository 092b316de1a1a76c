"""Runtime settings: the only place environment variables are read.

pydantic-settings reads them once, validates them and gives the rest of the code typed
values. Nothing is created on import; call :func:`get_settings` when a value is needed.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The repository root (the project is installed editable, so this is the checkout).
PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8000
# Where `make api` serves by default; lib.contract re-exports it.
DEFAULT_CONFIG_API_URL = f"http://{DEFAULT_API_HOST}:{DEFAULT_API_PORT}"


def is_loopback(host: str) -> bool:
    """Whether a server bound to ``host`` is reachable from this machine only."""
    import ipaddress

    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def api_url_for(host: str, port: int) -> str:
    """The URL a client on this machine uses for an API served on ``host``:``port``.

    A server bound to every interface (``0.0.0.0``, ``::``) is dialled on loopback;
    an IPv6 address goes in brackets.
    """
    host = host.strip("[]")  # `[::1]` as written in a URL
    every = {"0.0.0.0": "127.0.0.1", "::": "::1", "": DEFAULT_API_HOST}  # noqa: S104 (a dial)
    host = every.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port or DEFAULT_API_PORT}"


class Settings(BaseSettings):
    """Typed view of the environment; every field can be set by its upper-case name."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    data_dir: Path = Field(default=PROJECT_ROOT / "data", description="User and training data.")
    model_dir: Path = Field(default=PROJECT_ROOT / "models", description="Model artifacts.")
    output_dir: Path = Field(default=PROJECT_ROOT / "output", description="Job outputs.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the config DB; default: SQLite in data_dir."
    )
    config_api_url: str = Field(
        default="",
        description="Config API base URL every client uses; default: from API_HOST and API_PORT.",
    )
    api_host: str = Field(
        default=DEFAULT_API_HOST, description="Address `make api` / `make up` serve the API on."
    )
    api_port: int = Field(
        default=DEFAULT_API_PORT,
        ge=0,
        le=65535,
        description="Port `make api` / `make up` / `make demo` serve the API on (0: a free one, "
        "for `make demo` only).",
    )
    spark_master: str | None = Field(
        default=None, description="Spark master URL; unset: local[*], or spark-submit's."
    )
    pyspark_gateway_port: int | None = Field(
        default=None, description="Set by spark-submit for the Python driver it launched."
    )
    spark_remote: str | None = Field(
        default=None,
        description="pyspark's own SPARK_REMOTE (sc://host:port): use Spark Connect, not a JVM "
        "of our own. The token comes from SPARK_CONNECT_AUTHENTICATE_TOKEN or, for the local "
        "server, its token file.",
    )
    spark_connect_port: int = Field(
        default=15002, ge=1, le=65535, description="Port of the local Spark Connect server."
    )
    spark_driver_memory: str = Field(default="2g", description="spark.driver.memory.")
    scoring_path: Literal["auto", "python-reads", "spark-reads"] = Field(
        default="auto",
        description="How the job reads the users: auto (Python reads local or mounted "
        "Parquet with pyarrow, Spark reads remote inputs), or force one path.",
    )
    spark_class_cache: bool = Field(
        default=True, description="Share a JVM class-data archive between local Spark starts."
    )
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "spark-ml-pipeline", description="Reusable caches."
    )
    test_database_url: str | None = Field(
        default=None, description="PostgreSQL URL for the test suite's postgres tests."
    )
    ci: bool = Field(default=False, description="Set by CI: required test services must exist.")
    run_stale_after_seconds: int = Field(
        default=180,
        ge=1,
        description="A queued or running run with no sign of life for this long is `stale`.",
    )

    @model_validator(mode="after")
    def _one_address_for_the_api(self) -> Settings:
        # One source for the API's address: API_HOST/API_PORT reach every client (the job,
        # the runner, notebooks 03/04) unless CONFIG_API_URL says otherwise.
        if not self.config_api_url:
            object.__setattr__(self, "config_api_url", api_url_for(self.api_host, self.api_port))
        return self

    @property
    def users_path(self) -> Path:
        """The scoring sample the seed describes (1,000 users by default)."""
        return self.data_dir / "sample_users.parquet"

    @property
    def training_path(self) -> Path:
        """The labelled set the model is trained on."""
        return self.data_dir / "training_users.parquet"

    @property
    def effective_database_url(self) -> str:
        """DATABASE_URL, or the embedded SQLite file under data_dir."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'campaigns.db').as_posix()}"

    @property
    def runs_dir(self) -> Path:
        """Executed notebooks and HTML reports of scoring runs."""
        return self.output_dir / "runs"

    @property
    def logs_dir(self) -> Path:
        """Logs a one-line error points to: job failures, the JVM's own, servers."""
        return self.output_dir / "logs"

    def prediction_path(self, campaign_id: int, as_of: date | None = None) -> Path:
        """Where the job writes a campaign's predictions (the seed's file name); a dated
        run writes its own file, so a re-run of a date replaces that date's only."""
        if as_of is None:
            return self.output_dir / f"predictions_campaign_{campaign_id}.parquet"
        return self.output_dir / f"predictions_campaign_{campaign_id}_{as_of.isoformat()}.parquet"

    def outcomes_path(self, campaign_id: int, as_of: date | None = None) -> Path:
        """Where notebook 06 writes a campaign's (simulated) outcomes, beside its predictions."""
        dated = f"_{as_of.isoformat()}" if as_of else ""
        return self.output_dir / f"outcomes_campaign_{campaign_id}{dated}.parquet"

    @property
    def snapshots_dir(self) -> Path:
        """Dated snapshots of the users: ``users/snapshot_date=YYYY-MM-DD/`` (Hive style)."""
        return self.data_dir / "users"

    def snapshot_path(self, as_of: date) -> Path:
        """The users as they were on ``as_of`` (one folder of Parquet files)."""
        return self.snapshots_dir / f"snapshot_date={as_of.isoformat()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()


def directory_env(root: str | Path) -> dict[str, str]:
    """DATA_DIR, MODEL_DIR and OUTPUT_DIR for a project laid out under ``root``.

    What a subprocess (the demo's API, a test's job, a benchmark) needs in its environment
    to work on another project folder than the repository's own.
    """
    base = Path(root)
    return {
        "DATA_DIR": str(base / "data"),
        "MODEL_DIR": str(base / "models"),
        "OUTPUT_DIR": str(base / "output"),
    }
