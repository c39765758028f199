"""keel_audit: one row per command the bus handled (succeeded, failed or denied).

Revision ID: keel_0005
Revises: keel_0004
Create Date: 2026-12-07 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import keel.orm

revision: str = "keel_0005"
down_revision: str | Sequence[str] | None = "keel_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "keel_audit",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", keel.orm.UTCDateTime(), nullable=False),
        sa.Column("message_type", sa.String(length=200), nullable=False),
        sa.Column("handler", sa.String(length=300), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("principal_id", sa.String(length=255), nullable=True),
        sa.Column("correlation_id", sa.String(length=200), nullable=True),
        sa.Column("command_id", sa.String(length=200), nullable=True),
        sa.Column("payload", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("error_code", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_keel_audit")),
    )
    op.create_index("ix_keel_audit_occurred_at", "keel_audit", ["occurred_at"])
    op.create_index("ix_keel_audit_principal_id", "keel_audit", ["principal_id"])
    op.create_index("ix_keel_audit_correlation_id", "keel_audit", ["correlation_id"])


def downgrade() -> None:
    op.drop_index("ix_keel_audit_correlation_id", table_name="keel_audit")
    op.drop_index("ix_keel_audit_principal_id", table_name="keel_audit")
    op.drop_index("ix_keel_audit_occurred_at", table_name="keel_audit")
    op.drop_table("keel_audit")
