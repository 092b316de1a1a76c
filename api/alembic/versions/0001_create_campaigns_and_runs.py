"""Create the campaigns and campaign_runs tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Timestamps are stored as UTC: timestamptz on PostgreSQL, naive UTC text on SQLite.
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("model_path", sa.String(length=500), nullable=False),
        sa.Column("audience_filter", sa.Text(), nullable=True),
        sa.Column(
            "features",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("name", name=op.f("uq_campaigns_name")),
    )
    op.create_table(
        "campaign_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("started_at", Timestamp, nullable=True),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.Column("input_rows", sa.BigInteger(), nullable=True),
        sa.Column("audience_size", sa.BigInteger(), nullable=True),
        sa.Column("scored_rows", sa.BigInteger(), nullable=True),
        sa.Column("output_path", sa.String(length=1000), nullable=True),
        sa.Column("model_sha256", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed')",
            name=op.f("ck_campaign_runs_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_runs_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_runs")),
    )
    with op.batch_alter_table("campaign_runs") as batch_op:
        batch_op.create_index(batch_op.f("ix_campaign_runs_campaign_id"), ["campaign_id"])


def downgrade() -> None:
    with op.batch_alter_table("campaign_runs") as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_runs_campaign_id"))
    op.drop_table("campaign_runs")
    op.drop_table("campaigns")
