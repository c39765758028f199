"""Sorting and both kinds of page over Python objects, as the SQL repository does them."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement
from sqlalchemy.orm import InstrumentedAttribute

from keel.cross_cutting.error import ValidationError
from keel.infrastructure.repository._base import RepositoryBase
from keel.infrastructure.repository._checks import check_page, check_size
from keel.infrastructure.repository._keyset import compare, plan_cursor_page
from keel.infrastructure.repository._sorting import OrderByArg, SortKey, sort_keys
from keel.infrastructure.repository.cursor import invalid_cursor
from keel.infrastructure.repository.pages import CursorPage, Page
from keel.infrastructure.repository.settings import resolve_cursor_secret, resolve_setting

if TYPE_CHECKING:
    from keel.infrastructure.repository.memory.repository import InMemoryRepository


def _keys(model: type[Any], order_by: OrderByArg, *, tie_breaker: bool) -> list[SortKey]:
    items: Any = order_by
    if isinstance(order_by, str | InstrumentedAttribute | ColumnElement):
        items = [order_by]
    try:
        return sort_keys(model, items, tie_breaker=tie_breaker)
    except ValidationError as exc:
        if exc.errors and exc.errors[0].get("msg") == "not a mapped column":
            raise ValidationError(
                "the in-memory repository sorts by mapped columns only",
                errors=[{"loc": ["order_by"], "msg": "not a mapped column", "type": "value_error"}],
            ) from None
        raise


def values_of(row: object, keys: Sequence[SortKey]) -> tuple[Any, ...]:
    return tuple(getattr(row, k.name) for k in keys)


def sort_rows(model: type[Any], rows: list[Any], order_by: OrderByArg, *, tie_breaker: bool) -> list[Any]:
    """``rows`` in the order SQL would return them (stable for equal keys)."""
    keys = _keys(model, order_by, tie_breaker=tie_breaker)
    if not keys:
        return list(rows)
    return sorted(rows, key=functools.cmp_to_key(lambda a, b: compare(keys, values_of(a, keys), values_of(b, keys))))


def _settings(repo: InMemoryRepository[Any]) -> tuple[int, int, bytes]:
    # The SQL repository's order, the store standing in for the session: the
    # subclass, else the store's settings, else the process defaults.
    info = repo.store.info
    default = resolve_setting(repo, "default_page_size", info, base=RepositoryBase)
    maximum = resolve_setting(repo, "max_page_size", info, base=RepositoryBase)
    return default, maximum, resolve_cursor_secret(repo, info, base=RepositoryBase)


def offset_page(
    repo: InMemoryRepository[Any], rows: list[Any], *, page: int, size: int | None, order_by: OrderByArg
) -> Page[Any]:
    page = check_page(page)
    default, maximum, _ = _settings(repo)
    size = check_size(size, default=default, maximum=maximum)
    ordered = sort_rows(repo.model, rows, order_by, tie_breaker=True)
    start = (page - 1) * size
    return Page(ordered[start : start + size], len(rows), page, size)


def cursor_page(
    repo: InMemoryRepository[Any],
    rows: list[Any],
    conditions: Sequence[Any],
    *,
    cursor: str | None,
    size: int | None,
    order_by: OrderByArg,
    mode: str,
) -> CursorPage[Any]:
    default, maximum, secret = _settings(repo)
    size = check_size(size, default=default, maximum=maximum)
    keys = _keys(repo.model, order_by, tie_breaker=True)
    plan = plan_cursor_page(
        repo.model, keys=keys, conditions=conditions, mode=mode, cursor=cursor, size=size, secret=secret
    )
    read_keys = plan.read_keys
    ordered = sort_rows(repo.model, rows, [k.token for k in read_keys], tie_breaker=False)
    boundary = plan.boundary
    if boundary is not None:
        try:
            ordered = [r for r in ordered if compare(read_keys, values_of(r, read_keys), boundary) > 0]
        except TypeError:
            # Values the column type accepted that still do not compare with
            # the stored ones (SQL would refuse to bind them): a bad cursor.
            raise invalid_cursor("malformed") from None
    return plan.page(ordered[: plan.fetch], lambda row: values_of(row, keys))
