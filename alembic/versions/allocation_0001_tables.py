"""The allocation example's tables: products, batches, order lines, allocations, and the read model.

Matches ``examples/allocation/orm.py`` exactly (constraint names from
``keel.orm.NAMING_CONVENTION``); the drift test runs ``alembic check``.

Revision ID: allocation_0001
Revises:
Create Date: 2026-11-27 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import keel.orm

revision: str = "allocation_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("allocation",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("sku", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", keel.orm.UTCDateTime(), nullable=False),
        sa.Column("updated_at", keel.orm.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sku", name=op.f("pk_products")),
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("reference", sa.String(length=255), nullable=False),
        sa.Column("sku", sa.String(length=255), nullable=False),
        sa.Column("purchased_quantity", sa.Integer(), nullable=False),
        sa.Column("eta", sa.Date(), nullable=True),
        sa.Column("created_at", keel.orm.UTCDateTime(), nullable=False),
        sa.Column("updated_at", keel.orm.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["sku"], ["products.sku"], name=op.f("fk_batches_sku_products")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
        sa.UniqueConstraint("reference", name=op.f("uq_batches_reference")),
    )
    op.create_index(op.f("ix_batches_sku"), "batches", ["sku"], unique=False)
    op.create_table(
        "order_lines",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("orderid", sa.String(length=255), nullable=False),
        sa.Column("sku", sa.String(length=255), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_lines")),
    )
    op.create_index(op.f("ix_order_lines_orderid"), "order_lines", ["orderid"], unique=False)
    op.create_table(
        "allocations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("orderline_id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], name=op.f("fk_allocations_batch_id_batches")),
        sa.ForeignKeyConstraint(
            ["orderline_id"], ["order_lines.id"], name=op.f("fk_allocations_orderline_id_order_lines")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocations")),
    )
    op.create_index(op.f("ix_allocations_batch_id"), "allocations", ["batch_id"], unique=False)
    op.create_index(op.f("ix_allocations_orderline_id"), "allocations", ["orderline_id"], unique=False)
    op.create_table(
        "allocations_view",
        sa.Column("orderid", sa.String(length=255), nullable=False),
        sa.Column("sku", sa.String(length=255), nullable=False),
        sa.Column("batchref", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("orderid", "sku", name=op.f("pk_allocations_view")),
    )


def downgrade() -> None:
    op.drop_table("allocations_view")
    op.drop_index(op.f("ix_allocations_orderline_id"), table_name="allocations")
    op.drop_index(op.f("ix_allocations_batch_id"), table_name="allocations")
    op.drop_table("allocations")
    op.drop_index(op.f("ix_order_lines_orderid"), table_name="order_lines")
    op.drop_table("order_lines")
    op.drop_index(op.f("ix_batches_sku"), table_name="batches")
    op.drop_table("batches")
    op.drop_table("products")
