"""The bank example's read model: ``bank_balances`` (matches ``examples/bank_account/orm.py``).

Revision ID: bank_0001
Revises:
Create Date: 2026-12-07 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "bank_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("bank",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bank_balances",
        sa.Column("account_id", sa.String(length=100), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("balance", sa.Integer(), nullable=False),
        sa.Column("movements", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_bank_balances")),
    )


def downgrade() -> None:
    op.drop_table("bank_balances")
