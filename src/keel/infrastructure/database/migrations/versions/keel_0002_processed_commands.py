"""keel_processed_commands: the record that makes each command's effects apply once.

Revision ID: keel_0002
Revises: keel_0001
Create Date: 2026-12-01 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import keel.orm

revision: str = "keel_0002"
down_revision: str | Sequence[str] | None = "keel_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "keel_processed_commands",
        sa.Column("command_id", sa.String(length=200), nullable=False),
        sa.Column("command_type", sa.String(length=200), nullable=False),
        sa.Column("committed_at", keel.orm.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("command_id", name=op.f("pk_keel_processed_commands")),
    )


def downgrade() -> None:
    op.drop_table("keel_processed_commands")
