"""campaign_runs.scoring_path: how the job read the users.

The job now has two ways to read its input: Python tasks read the Parquet row groups with
pyarrow (local or mounted inputs), or Spark reads a remote input in the JVM and ships the
features to Python; notebook 04 can also score in its own process without Spark. The run
record keeps which one ran (``python-reads``, ``spark-reads`` or ``in-process``; null for
runs of older jobs), under a CHECK constraint with the text of api.models (copied,
not imported: a migration keeps meaning what it meant when it was written). A new nullable
column: no stored row can break the constraint.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = "scoring_path IN ('python-reads', 'spark-reads', 'in-process')"


def upgrade() -> None:
    with op.batch_alter_table("campaign_runs") as batch_op:
        batch_op.add_column(sa.Column("scoring_path", sa.String(length=20), nullable=True))
        batch_op.create_check_constraint(op.f("ck_campaign_runs_scoring_path_known"), CHECK)


def downgrade() -> None:
    with op.batch_alter_table("campaign_runs") as batch_op:
        batch_op.drop_constraint(op.f("ck_campaign_runs_scoring_path_known"), type_="check")
        batch_op.drop_column("scoring_path")
