"""campaigns.name_key: names unique ignoring case, letter width and spacing; campaign_runs.version.

``Dup``, ``dup``, the NFC and NFD forms of one visible name and a full-width letter were
different names byte for byte, so a marketer could see two campaigns of the same name and
score the wrong one. Each row gets the sha256 of its name's key (NFKC, case folded, without
characters that render as nothing, runs of white space as one space), under a unique
constraint. The rule is copied, not imported, from
api.models.name_key: a migration must keep meaning what it meant when it was written.

Stored names that already clash refuse the upgrade before any DDL, with one message naming
the clashing ids and names (as 0002 does for its constraints).

campaign_runs.version counts a run's updates: every UPDATE says which version it read, so of
two concurrent updates checked against the same state (one finishing the run as succeeded,
the other as failed) only the first is written (api.run_states; SQLite cannot lock the row).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from alembic.util import CommandError

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MAX_GROUPS_SHOWN = 10


# Unicode's Default_Ignorable_Code_Point ranges and the braille blank (as lib.text had them).
_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x2800, 0x2800),
    (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip


def _key(name: str) -> str:
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    visible = "".join(
        c for c in folded if not any(low <= ord(c) <= high for low, high in _IGNORABLE)
    )
    return hashlib.sha256(" ".join(visible.split()).encode("utf-8")).hexdigest()


def _clashes(rows: Sequence[tuple[int, str]]) -> list[str]:
    """One phrase per group of stored names that share a key."""
    groups: dict[str, list[tuple[int, str]]] = {}
    for row_id, name in rows:
        groups.setdefault(_key(name), []).append((row_id, name))
    clashing = [group for group in groups.values() if len(group) > 1]
    shown = [
        " and ".join(f"id {row_id} {name!r}" for row_id, name in group)
        for group in clashing[:MAX_GROUPS_SHOWN]
    ]
    if len(clashing) > MAX_GROUPS_SHOWN:
        shown.append(f"{len(clashing) - MAX_GROUPS_SHOWN} more groups")
    return shown


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, name FROM campaigns ORDER BY id")).all()
    clashes = _clashes([(int(row_id), str(name)) for row_id, name in rows])
    if clashes:
        raise CommandError(
            "cannot upgrade to 0003: campaign names that differ only in case, letter width "
            "or spacing: " + "; ".join(clashes) + ". Rename or delete all but one of each "
            "(through the API at the previous version, or with SQL), then migrate again; "
            "migration 0003 changed nothing"
        )
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.add_column(sa.Column("name_key", sa.String(length=64), nullable=True))
    campaigns = sa.table("campaigns", sa.column("id"), sa.column("name_key"))
    for row_id, name in rows:
        bind.execute(campaigns.update().where(campaigns.c.id == row_id).values(name_key=_key(name)))
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.alter_column("name_key", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(op.f("uq_campaigns_name_key"), ["name_key"])
    with op.batch_alter_table("campaign_runs") as batch_op:
        batch_op.add_column(
            sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )


def downgrade() -> None:
    with op.batch_alter_table("campaign_runs") as batch_op:
        batch_op.drop_column("version")
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.drop_constraint(op.f("uq_campaigns_name_key"), type_="unique")
        batch_op.drop_column("name_key")
