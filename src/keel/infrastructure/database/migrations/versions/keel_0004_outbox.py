"""keel_outbox and keel_inbox: the transactional outbox and the idempotent consumers' record.

Revision ID: keel_0004
Revises: keel_0003
Create Date: 2026-12-07 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import keel.orm

revision: str = "keel_0004"
down_revision: str | Sequence[str] | None = "keel_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "keel_outbox",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity(), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("ordering_key", sa.String(length=255), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", keel.orm.UTCDateTime(), nullable=False),
        sa.Column("available_at", keel.orm.UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("published_at", keel.orm.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_keel_outbox")),
    )
    op.create_index("ix_keel_outbox_status_position", "keel_outbox", ["status", "position"])
    op.create_index("ix_keel_outbox_ordering_key_position", "keel_outbox", ["ordering_key", "position"])
    op.create_table(
        "keel_inbox",
        sa.Column("consumer", sa.String(length=200), nullable=False),
        sa.Column("message_key", sa.String(length=200), nullable=False),
        sa.Column("processed_at", keel.orm.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_key", name=op.f("pk_keel_inbox")),
    )
    op.create_index("ix_keel_inbox_processed_at", "keel_inbox", ["processed_at"])


def downgrade() -> None:
    op.drop_index("ix_keel_inbox_processed_at", table_name="keel_inbox")
    op.drop_table("keel_inbox")
    op.drop_index("ix_keel_outbox_ordering_key_position", table_name="keel_outbox")
    op.drop_index("ix_keel_outbox_status_position", table_name="keel_outbox")
    op.drop_table("keel_outbox")
