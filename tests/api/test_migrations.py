"""Alembic owns the schema: it builds an empty database of each kind, and agrees with the ORM."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

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


def _check_upgrade_keeps_rows(url: str) -> None:
    """0001 -> 0002 on a database with data: rows survive (SQLite rebuilds the tables in
    batch mode, and dropping a parent table must not cascade into the runs)."""
    command.upgrade(alembic_config(url), "0001")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO campaigns (name, model_path, features, is_active, created_at, "
                    "updated_at) VALUES ('kept', 'm.pkl', '[\"recency\"]', true, "
                    "'2026-11-26 12:00:00', '2026-11-26 12:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO campaign_runs (campaign_id, status, created_at) "
                    "VALUES (1, 'running', '2026-11-26 12:00:00')"
                )
            )
        upgrade(url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT name FROM campaigns")).scalars().all() == [
                "kept"
            ]
            runs = connection.execute(text("SELECT status, heartbeat_at FROM campaign_runs"))
            assert runs.all() == [("running", None)]
    finally:
        engine.dispose()


def test_sqlite_upgrade_to_0002_keeps_rows(tmp_path: Path) -> None:
    _check_upgrade_keeps_rows(f"sqlite:///{tmp_path / 'old.db'}")


@pytest.mark.postgres
def test_postgres_upgrade_to_0002_keeps_rows(postgres_server_url: str) -> None:
    url, drop = create_postgres_database(postgres_server_url)
    try:
        _check_upgrade_keeps_rows(url)
    finally:
        drop()
