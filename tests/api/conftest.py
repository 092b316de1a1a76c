"""API fixtures: a migrated database of each kind, an in-process client, a real server."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from api import db as api_db
from api.migrate import upgrade
from lib.settings import get_settings
from tests.conftest import configure_env

SEED_BODY = {
    "name": "Black Friday Campaign",
    "model_path": "models/campaign_model_v1.pkl",
    "audience_filter": "country='US' AND age > 25",
    "features": [
        "recency", "frequency", "monetary", "engagement_score", "days_since_last_purchase",
    ],
}


def reset_caches() -> None:
    """Forget settings and dispose engines, so the next request reads the environment anew."""
    api_db.dispose_engines()
    get_settings.cache_clear()


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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'campaigns.db'}"
        upgrade(url)
        yield url
        return
    url = request.getfixturevalue("postgres_database")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE campaign_runs, campaigns RESTART IDENTITY CASCADE"))
    engine.dispose()
    yield url


@pytest.fixture
def api_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained_model_dir: Path, database_url: str
) -> Iterator[Path]:
    """Environment for the API: a copy of the trained model, the database under test."""
    root = tmp_path / "project"
    configure_env(monkeypatch, root, DATABASE_URL=database_url)
    shutil.rmtree(root / "models")
    shutil.copytree(trained_model_dir, root / "models")
    reset_caches()
    yield root
    reset_caches()


@pytest.fixture
def client(api_env: Path) -> Iterator[TestClient]:
    from api.main import app

    with TestClient(app) as test_client:
        yield test_client
