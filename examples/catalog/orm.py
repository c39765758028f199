"""The catalog's model: products that are soft-deleted, never removed.

A soft-deleted row keeps its SKU, so a plain ``UNIQUE (sku)`` would forbid
re-creating a product under the SKU of a deleted one. The recipe is a
*partial* unique index over live rows only, ``WHERE deleted_at IS NULL``, on
PostgreSQL and SQLite alike (both support partial indexes); the migration
``alembic/versions/catalog_0001_tables.py`` creates the same index.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Index, Numeric, String, text
from sqlalchemy.orm import Mapped, mapped_column

from keel import AggregateRoot
from keel.orm import Base, SoftDeleteMixin, TimestampMixin, VersionMixin

LIVE_ROWS = text("deleted_at IS NULL")


class CatalogProduct(Base, AggregateRoot, VersionMixin, TimestampMixin, SoftDeleteMixin):
    __tablename__ = "catalog_products"
    __table_args__ = (
        Index(
            "uq_catalog_products_sku_live",
            "sku",
            unique=True,
            postgresql_where=LIVE_ROWS,
            sqlite_where=LIVE_ROWS,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(50), default=None, index=True)
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
