"""After the scoring: a campaign's holdout share and input tolerance; a run's control size,
largest PSI, score shares and snapshot date.

campaigns.holdout_share (default 0.1, 0 to 0.5) and campaigns.input_tolerance (default 0.05,
0 to 1) are NOT NULL with server defaults, so existing campaigns get the defaults.
campaign_runs gains nullable columns (older runs have none of them): control_size,
max_psi, score_shares (a JSON array of ten shares) and as_of (the snapshot date, indexed:
a backfill looks runs up by it). The CHECK texts are copied from api.models, not imported:
a migration keeps meaning what it meant when it was written.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CAMPAIGN_CHECKS = {
    "holdout_share_range": {"*": "holdout_share BETWEEN 0 AND 0.5"},
    "input_tolerance_range": {"*": "input_tolerance BETWEEN 0 AND 1"},
}
RUN_CHECKS = {
    "control_size_non_negative": {"*": "coalesce(control_size, 0) >= 0"},
    "control_size_integer": {"sqlite": "typeof(control_size) IN ('integer', 'null')"},
    "max_psi_non_negative": {"*": "coalesce(max_psi, 0) >= 0"},
    "score_shares_array": {
        "sqlite": "score_shares IS NULL OR (CASE WHEN json_valid(score_shares) THEN "
        "json_type(score_shares) = 'array' AND json_array_length(score_shares) = 10 "
        "ELSE 0 END)",
        "postgresql": "score_shares IS NULL OR (CASE WHEN jsonb_typeof(score_shares) = 'array' "
        "THEN jsonb_array_length(score_shares) = 10 ELSE false END)",
    },
    "as_of_date": {"sqlite": "as_of IS NULL OR coalesce(date(julianday(as_of)) = as_of, 0)"},
}


def _checks(batch_op: Any, table: str, checks: dict[str, dict[str, str]], dialect: str) -> None:
    for name, texts in checks.items():
        text = texts.get("*", texts.get(dialect))
        if text is not None:
            batch_op.create_check_constraint(op.f(f"ck_{table}_{name}"), text)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    json_type = JSONB() if dialect == "postgresql" else sa.JSON()
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.add_column(
            sa.Column("holdout_share", sa.Float(), nullable=False, server_default=sa.text("0.1"))
        )
        batch_op.add_column(
            sa.Column("input_tolerance", sa.Float(), nullable=False, server_default=sa.text("0.05"))
        )
        _checks(batch_op, "campaigns", CAMPAIGN_CHECKS, dialect)
    with op.batch_alter_table("campaign_runs") as batch_op:
        batch_op.add_column(sa.Column("control_size", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("max_psi", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("score_shares", json_type, nullable=True))
        batch_op.add_column(sa.Column("as_of", sa.Date(), nullable=True))
        _checks(batch_op, "campaign_runs", RUN_CHECKS, dialect)
        batch_op.create_index(op.f("ix_campaign_runs_as_of"), ["as_of"])


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("campaign_runs") as batch_op:
        batch_op.drop_index(op.f("ix_campaign_runs_as_of"))
        for name, texts in RUN_CHECKS.items():
            if "*" in texts or dialect in texts:
                batch_op.drop_constraint(op.f(f"ck_campaign_runs_{name}"), type_="check")
        for column in ("as_of", "score_shares", "max_psi", "control_size"):
            batch_op.drop_column(column)
    with op.batch_alter_table("campaigns") as batch_op:
        for name in CAMPAIGN_CHECKS:
            batch_op.drop_constraint(op.f(f"ck_campaigns_{name}"), type_="check")
        batch_op.drop_column("input_tolerance")
        batch_op.drop_column("holdout_share")
