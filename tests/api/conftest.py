"""API fixtures: a migrated database of each kind, an in-process client, a real server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from api import db as api_db
from api.migrate import upgrade
from lib.contract import seed_campaign
from lib.settings import get_settings
from tests.helpers import configure_env

# The seed campaign body (lib.contract.seed_campaign); the API tests import it from here.
SEED_BODY = seed_campaign()


def reset_caches() -> None:
    """Forget settings and dispose engines, so the next request reads the environment anew."""
    api_db.dispose_engines()
    get_settings.cache_clear()


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
    """The app in process (lifespan included) on the database under test."""
    from api.main import app

    with TestClient(app) as test_client:
        yield test_client
