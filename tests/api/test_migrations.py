"""Alembic owns the schema: it builds an empty database of each kind, and agrees with the ORM."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect

from api.migrate import alembic_config, current_revision, ensure_schema, head_revision, upgrade
from tests.conftest import create_postgres_database


def _check_round_trip(url: str) -> None:
    upgrade(url)
    engine = create_engine(url)
    try:
        assert current_revision(engine) == head_revision()
        tables = set(inspect(engine).get_table_names())
        assert {"campaigns", "campaign_runs", "alembic_version"} <= tables
        command.check(alembic_config(url))  # raises if models and migrations differ
        command.downgrade(alembic_config(url), "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        upgrade(url)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_sqlite_upgrade_check_downgrade(tmp_path: Path) -> None:
    _check_round_trip(f"sqlite:///{tmp_path / 'fresh.db'}")


@pytest.mark.postgres
def test_postgres_upgrade_check_downgrade(postgres_server_url: str) -> None:
    url, drop = create_postgres_database(postgres_server_url)
    try:
        _check_round_trip(url)
    finally:
        drop()


def test_embedded_sqlite_is_migrated_automatically(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auto.db'}"
    engine = create_engine(url)
    ensure_schema(engine)
    assert current_revision(engine) == head_revision()
    engine.dispose()


@pytest.mark.postgres
def test_unmigrated_postgres_is_refused_with_a_clear_message(postgres_server_url: str) -> None:
    from api.migrate import SchemaNotReadyError

    url, drop = create_postgres_database(postgres_server_url)
    engine = create_engine(url)
    try:
        with pytest.raises(SchemaNotReadyError, match="run `make migrate`"):
            ensure_schema(engine)
    finally:
        engine.dispose()
        drop()
