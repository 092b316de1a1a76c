"""Shared fixtures: isolated settings, a small trained model, the one SparkSession."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from api.migrate import upgrade
from lib.settings import PROJECT_ROOT, Settings, get_settings

# Spark and Jupyter kernels started by the tests use this interpreter and loopback only.
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable

NOTEBOOKS = PROJECT_ROOT / "notebooks"


def configure_env(monkeypatch: pytest.MonkeyPatch, root: Path, **extra: str) -> Settings:
    """Point DATA_DIR/MODEL_DIR/OUTPUT_DIR (and ``extra`` variables) at ``root``."""
    for name in ("data", "models", "output"):
        (root / name).mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("DATA_DIR", str(root / "data"))
    monkeypatch.setenv("MODEL_DIR", str(root / "models"))
    monkeypatch.setenv("OUTPUT_DIR", str(root / "output"))
    for key, value in extra.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings whose data, model and output directories live in a fresh temporary folder."""
    yield configure_env(monkeypatch, tmp_path)
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory holding a small registered model (.cbm and .pkl), trained once."""
    from lib.data import generate_users
    from lib.training import save_model, train_model

    directory = tmp_path_factory.mktemp("models")
    result = train_model(generate_users(4_000, seed=7, labelled=True), iterations=60)
    save_model(result, directory)
    return directory


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    """The suite's one local SparkSession (two cores, UI off, restricted SQL)."""
    from lib.spark import build_spark

    warehouse = tmp_path_factory.mktemp("spark-warehouse")  # Ibis creates temporary tables
    session = build_spark(
        "spark-ml-pipeline-tests",
        "local[2]",
        extra_conf={"spark.sql.warehouse.dir": str(warehouse)},
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The PostgreSQL server for tests; skipped locally without it, a failure in CI."""
    settings = get_settings()
    url = settings.test_database_url
    if not url:
        if settings.ci:
            pytest.fail("CI is set but TEST_DATABASE_URL is not: PostgreSQL tests must run")
        pytest.skip("TEST_DATABASE_URL is not set (PostgreSQL tests run in CI)")
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 5})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as err:  # any connection failure: say which, fail in CI
        if settings.ci:
            pytest.fail(f"PostgreSQL at TEST_DATABASE_URL is unreachable: {err}")
        pytest.skip(f"PostgreSQL at TEST_DATABASE_URL is unreachable: {err}")
    return url


def create_postgres_database(server_url: str) -> tuple[str, Callable[[], None]]:
    """A new, empty database on the test server; returns its URL and a function dropping it."""
    name = f"sparkml_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


@pytest.fixture(scope="session")
def postgres_database(postgres_server_url: str) -> Iterator[str]:
    """One migrated PostgreSQL database for the session (tables emptied between tests)."""
    url, drop = create_postgres_database(postgres_server_url)
    upgrade(url)
    yield url
    drop()
