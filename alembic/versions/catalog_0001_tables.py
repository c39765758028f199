"""The catalog example's table, with the partial unique index recipe for soft delete.

``uq_catalog_products_sku_live`` is unique over live rows only
(``WHERE deleted_at IS NULL``, on PostgreSQL and SQLite), so a soft-deleted
product keeps its SKU without blocking a new product under the same SKU.
Matches ``examples/catalog/orm.py``; the drift test runs ``alembic check``.

Revision ID: catalog_0001
Revises:
Create Date: 2026-11-27 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import keel.orm

revision: str = "catalog_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("catalog",)
depends_on: str | Sequence[str] | None = None

LIVE_ROWS = sa.text("deleted_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "catalog_products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=50), nullable=True),
        sa.Column("price", sa.Numeric(precision=10, scale=2), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", keel.orm.UTCDateTime(), nullable=False),
        sa.Column("updated_at", keel.orm.UTCDateTime(), nullable=False),
        sa.Column("deleted_at", keel.orm.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_products")),
    )
    op.create_index(op.f("ix_catalog_products_category"), "catalog_products", ["category"], unique=False)
    op.create_index(op.f("ix_catalog_products_deleted_at"), "catalog_products", ["deleted_at"], unique=False)
    op.create_index(
        "uq_catalog_products_sku_live",
        "catalog_products",
        ["sku"],
        unique=True,
        postgresql_where=LIVE_ROWS,
        sqlite_where=LIVE_ROWS,
    )


def downgrade() -> None:
    op.drop_index("uq_catalog_products_sku_live", table_name="catalog_products")
    op.drop_index(op.f("ix_catalog_products_deleted_at"), table_name="catalog_products")
    op.drop_index(op.f("ix_catalog_products_category"), table_name="catalog_products")
    op.drop_table("catalog_products")
