"""The catalog's repository and unit of work, and the one query an HTTP handler needs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from examples.catalog.orm import CatalogProduct
from keel import CursorPage, SqlAlchemyRepository, SqlAlchemyUnitOfWork, ValidationError, filters_from_query

#: What clients may filter on; never "every column" for a public API.
FILTERABLE = ("sku", "name", "category", "price", "created_at")
SORTABLE = {"name", "-name", "price", "-price", "created_at", "-created_at"}


class CatalogRepository(SqlAlchemyRepository[CatalogProduct]):
    async def browse(self, params: Mapping[str, Any]) -> CursorPage[CatalogProduct]:
        """A page for ``GET /products?category=lamps&price__lt=50&sort=-price&cursor=...``.

        Unknown filters, bad values, bad sort keys and foreign cursors are
        ``ValidationError``s (a 400), never SQL.
        """
        filters = filters_from_query(CatalogProduct, params, allowed=FILTERABLE)
        sort = str(params.get("sort", "name"))
        if sort not in SORTABLE:
            raise ValidationError(
                f"cannot sort by {sort[:50]!r}",
                errors=[{"loc": ["query", "sort"], "msg": "unsupported sort", "type": "value_error"}],
                allowed=sorted(SORTABLE),
            )
        size = int(params["size"]) if str(params.get("size", "")).isdigit() else None
        return await self.paginate_by_cursor(*filters, order_by=sort, size=size, cursor=params.get("cursor"))


class CatalogUnitOfWork(SqlAlchemyUnitOfWork):
    products: CatalogRepository
