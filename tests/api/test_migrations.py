"""Alembic owns the schema: it builds an empty database of each kind, and agrees with the ORM."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, inspect, text

from api.migrate import alembic_config, current_revision, ensure_schema, head_revision, upgrade
from lib.settings import PROJECT_ROOT
from tests.conftest import configure_env, create_postgres_database


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


_CAMPAIGN = (
    "INSERT INTO campaigns (name, model_path, features, is_active, created_at, updated_at) "
    "VALUES ('{name}', 'm.pkl', '{features}', {active}, '2026-11-26 12:00:00', "
    "'2026-11-26 12:00:00')"
)
_RUN = (
    "INSERT INTO campaign_runs (campaign_id, status, created_at, scored_rows, model_sha256) "
    "VALUES (1, 'running', '2026-11-26 12:00:00', {rows}, {sha})"
)
_GOOD_CAMPAIGN = _CAMPAIGN.format(name="fine", features='["recency"]', active="true")
_GOOD_RUN = _RUN.format(rows=10, sha="NULL")

# name -> (rows to insert after a valid campaign and run, the fix, the constraint named,
# dialects where the row can be stored at all: PostgreSQL's boolean refuses 2 by itself)
VIOLATIONS = {
    "is_active 2": (
        _CAMPAIGN.format(name="bad", features='["recency"]', active=2),
        "UPDATE campaigns SET is_active = 1 WHERE id = 2",
        "table campaigns: id 2 breaks ck_campaigns_is_active_boolean",
        {"sqlite"},
    ),
    "features not an array": (
        _CAMPAIGN.format(name="bad", features='"recency"', active="true"),
        "UPDATE campaigns SET features = '[\"recency\"]' WHERE id = 2",
        "table campaigns: id 2 breaks ck_campaigns_features_array",
        {"sqlite", "postgresql"},
    ),
    "negative count": (
        _RUN.format(rows=-1, sha="NULL"),
        "UPDATE campaign_runs SET scored_rows = 0 WHERE id = 2",
        "table campaign_runs: id 2 breaks ck_campaign_runs_counts_non_negative",
        {"sqlite", "postgresql"},
    ),
    "bad model_sha256": (
        _RUN.format(rows=1, sha="'ABC'"),
        "UPDATE campaign_runs SET model_sha256 = NULL WHERE id = 2",
        "table campaign_runs: id 2 breaks ck_campaign_runs_model_sha256_hex",
        {"sqlite", "postgresql"},
    ),
}


def _snapshot(engine: Engine) -> dict[str, object]:
    """Everything a failed upgrade must leave as it was."""
    with engine.connect() as connection:
        return {
            "tables": sorted(inspect(connection).get_table_names()),
            "campaigns": connection.execute(text("SELECT * FROM campaigns ORDER BY id")).all(),
            "runs": connection.execute(text("SELECT * FROM campaign_runs ORDER BY id")).all(),
            "revision": current_revision(engine),
        }


def _check_violating_row_refuses_upgrade(url: str, violation: str) -> None:
    """0001 -> 0002 over a row a new CHECK forbids: one clear error naming the table, the
    constraint and the id; the database stays at 0001, intact, with no _alembic_tmp_*
    table; once the row is fixed the upgrade goes through."""
    insert, fix, message, dialects = VIOLATIONS[violation]
    command.upgrade(alembic_config(url), "0001")
    engine = create_engine(url)
    try:
        assert engine.dialect.name in dialects
        with engine.begin() as connection:
            for statement in (_GOOD_CAMPAIGN, _GOOD_RUN, insert):
                connection.execute(text(statement))
        before = _snapshot(engine)
        assert before["revision"] == "0001"
        for _ in range(2):  # and again: a failed attempt must not block the next one
            with pytest.raises(CommandError, match=re.escape(message)) as refused:
                upgrade(url)
            assert "\n" not in str(refused.value)
            assert "then migrate again" in str(refused.value)
            assert _snapshot(engine) == before
        with engine.begin() as connection:
            connection.execute(text(fix))
        upgrade(url)
        assert current_revision(engine) == head_revision()
        assert not [t for t in inspect(engine).get_table_names() if t.startswith("_alembic")]
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM campaigns")).scalar() == 1 + (
                "campaigns" in message
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("violation", VIOLATIONS)
def test_sqlite_upgrade_refuses_rows_that_break_new_constraints(
    tmp_path: Path, violation: str
) -> None:
    _check_violating_row_refuses_upgrade(f"sqlite:///{tmp_path / 'old.db'}", violation)


@pytest.mark.postgres
@pytest.mark.parametrize(  # PostgreSQL's boolean column cannot even hold is_active = 2
    "violation", [name for name, case in VIOLATIONS.items() if "postgresql" in case[3]]
)
def test_postgres_upgrade_refuses_rows_that_break_new_constraints(
    postgres_server_url: str, violation: str
) -> None:
    url, drop = create_postgres_database(postgres_server_url)
    try:
        _check_violating_row_refuses_upgrade(url, violation)
    finally:
        drop()


def test_sqlite_upgrade_drops_a_leftover_batch_table(tmp_path: Path) -> None:
    """A database left by an earlier failed batch rebuild ("table _alembic_tmp_campaigns
    already exists") upgrades: the leftover copy is dropped, the original kept."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0001")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(_GOOD_CAMPAIGN))
            leftover = "CREATE TABLE _alembic_tmp_campaigns AS SELECT * FROM campaigns"
            connection.execute(text(leftover))
        upgrade(url)
        assert current_revision(engine) == head_revision()
        assert set(inspect(engine).get_table_names()) == {
            "alembic_version",
            "campaigns",
            "campaign_runs",
        }
        with engine.connect() as connection:
            assert connection.execute(text("SELECT name FROM campaigns")).scalars().all() == [
                "fine"
            ]
    finally:
        engine.dispose()


def _old_database_with_a_bad_row(path: Path) -> str:
    url = f"sqlite:///{path}"
    command.upgrade(alembic_config(url), "0001")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(_GOOD_CAMPAIGN))
        connection.execute(text(VIOLATIONS["is_active 2"][0]))
    engine.dispose()
    return url


def test_migrate_cli_refusal_is_one_line_and_non_zero(tmp_path: Path) -> None:
    url = _old_database_with_a_bad_row(tmp_path / "old.db")
    out = subprocess.run(
        [sys.executable, "-m", "api.migrate"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"❌ error: cannot migrate {url}: cannot upgrade to 0002: ")
    assert "table campaigns: id 2 breaks ck_campaigns_is_active_boolean" in lines[0]


def test_api_startup_on_a_refused_migration_raises_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process the error reaches the caller (the TestClient); over uvicorn it is one
    line and a non-zero exit (tests/e2e/test_api_server.py)."""
    from fastapi.testclient import TestClient

    from api.main import app
    from tests.api.conftest import reset_caches

    url = _old_database_with_a_bad_row(tmp_path / "old.db")
    configure_env(monkeypatch, tmp_path / "project", DATABASE_URL=url)
    reset_caches()
    refused = pytest.raises(CommandError, match="id 2 breaks ck_campaigns_is_active_boolean")
    try:
        with refused, TestClient(app):
            pass
    finally:
        reset_caches()
