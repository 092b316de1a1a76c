"""CHECK constraints for what the API guarantees; campaign_runs.heartbeat_at.

The texts are copied, not imported, from api.models (CAMPAIGN_CHECKS, RUN_CHECKS): a
migration must keep meaning what it meant when it was written. On SQLite, batch mode
rebuilds the tables (named constraints such as ck_campaign_runs_status_known are kept).

A database holding rows that break a new constraint refuses the upgrade before any DDL,
with one message naming the table, the constraint and the row ids: SQLite's batch rebuild
is not transactional, and failing halfway left ``_alembic_tmp_<table>`` behind, which made
every later attempt fail with "table _alembic_tmp_campaigns already exists". Such a
leftover (from an earlier failed attempt) is dropped first, and after any failure.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from alembic.util import CommandError

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = ("input_rows", "audience_size", "scored_rows")

# name -> {dialect: text}; "*" applies to both databases.
CAMPAIGN_CHECKS: dict[str, dict[str, str]] = {
    "ck_campaigns_name_length": {"*": "length(name) BETWEEN 1 AND 200"},
    "ck_campaigns_model_path_length": {"*": "length(model_path) BETWEEN 1 AND 500"},
    "ck_campaigns_audience_filter_length": {"*": "length(audience_filter) <= 2000"},
    "ck_campaigns_is_active_boolean": {"sqlite": "is_active IN (0, 1)"},
    "ck_campaigns_features_array": {
        "sqlite": "CASE WHEN json_valid(features) THEN json_type(features) = 'array' "
        "AND json_array_length(features) BETWEEN 1 AND 50 ELSE 0 END",
        "postgresql": "CASE WHEN jsonb_typeof(features) = 'array' "
        "THEN jsonb_array_length(features) BETWEEN 1 AND 50 "
        "AND NOT jsonb_path_exists(features, '$[*] ? (@.type() != \"string\")') ELSE false END",
    },
}
RUN_CHECKS: dict[str, dict[str, str]] = {
    "ck_campaign_runs_counts_non_negative": {
        "*": " AND ".join(f"coalesce({c}, 0) >= 0" for c in COUNTS)
    },
    "ck_campaign_runs_counts_integer": {
        "sqlite": " AND ".join(f"typeof({c}) IN ('integer', 'null')" for c in COUNTS)
    },
    "ck_campaign_runs_model_sha256_hex": {
        "sqlite": "length(model_sha256) = 64 AND model_sha256 NOT GLOB '*[^0-9a-f]*'",
        "postgresql": "model_sha256 ~ '^[0-9a-f]{64}$'",
    },
    "ck_campaign_runs_output_path_length": {"*": "length(output_path) <= 1000"},
    "ck_campaign_runs_error_message_length": {"*": "length(error_message) <= 10000"},
}


def _for_dialect(checks: dict[str, dict[str, str]]) -> dict[str, str]:
    dialect = op.get_bind().dialect.name
    return {
        name: texts.get(dialect, texts.get("*", ""))
        for name, texts in checks.items()
        if dialect in texts or "*" in texts
    }


MAX_IDS_SHOWN = 20
TABLES = ("campaigns", "campaign_runs")


def _violations(table: str, checks: dict[str, dict[str, str]]) -> list[str]:
    """One phrase per new constraint that stored rows of ``table`` break."""
    found = []
    for name, condition in _for_dialect(checks).items():
        # NOT (condition) selects exactly what the CHECK refuses: NULL passes both.
        query = f"SELECT id FROM {table} WHERE NOT ({condition}) ORDER BY id"
        ids = op.get_bind().execute(sa.text(query)).scalars().all()
        if ids:
            shown = ", ".join(str(i) for i in ids[:MAX_IDS_SHOWN])
            more = f" and {len(ids) - MAX_IDS_SHOWN} more" if len(ids) > MAX_IDS_SHOWN else ""
            rows = f"id {shown} breaks" if len(ids) == 1 else f"ids {shown}{more} break"
            found.append(f"table {table}: {rows} {name} ({condition})")
    return found


def _leftover(table: str) -> str:
    return f"_alembic_tmp_{table}"


def _drop_leftovers() -> None:
    """Drop what a failed SQLite batch rebuild left behind, while the original is intact."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return  # PostgreSQL alters in place, in one transaction
    existing = set(sa.inspect(bind).get_table_names())
    for table in TABLES:
        if _leftover(table) not in existing:
            continue
        if table not in existing:  # the copy may hold the only rows: never drop it
            raise CommandError(
                f"cannot upgrade to 0002: table {table} is missing but {_leftover(table)} "
                f"exists (an interrupted rebuild): restore the database from a backup"
            )
        op.execute(f"DROP TABLE {_leftover(table)}")


def upgrade() -> None:
    _drop_leftovers()
    problems = _violations("campaigns", CAMPAIGN_CHECKS) + _violations("campaign_runs", RUN_CHECKS)
    if problems:
        raise CommandError(
            "cannot upgrade to 0002: stored rows break the new constraints: "
            + "; ".join(problems)
            + ". Fix or delete those rows (through the API at the previous version, or "
            "with SQL), then migrate again; the database is unchanged at revision 0001"
        )
    try:
        with op.batch_alter_table("campaigns") as batch_op:
            for name, condition in _for_dialect(CAMPAIGN_CHECKS).items():
                batch_op.create_check_constraint(op.f(name), condition)
        with op.batch_alter_table("campaign_runs") as batch_op:
            batch_op.add_column(
                sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True)
            )
            for name, condition in _for_dialect(RUN_CHECKS).items():
                batch_op.create_check_constraint(op.f(name), condition)
    except Exception:
        _drop_leftovers()  # SQLite: a failed copy must not block the next attempt
        raise


def downgrade() -> None:
    with op.batch_alter_table("campaign_runs") as batch_op:
        for name in _for_dialect(RUN_CHECKS):
            batch_op.drop_constraint(op.f(name), type_="check")
        batch_op.drop_column("heartbeat_at")
    with op.batch_alter_table("campaigns") as batch_op:
        for name in _for_dialect(CAMPAIGN_CHECKS):
            batch_op.drop_constraint(op.f(name), type_="check")
