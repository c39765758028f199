"""Cache-aside reads: ``get`` on repositories with ``cache_ttl``, and opt-in cached lists and pages.

A read looks the value up with its guards; on a hit it is rebuilt as an
entity attached to the unit of work's session; on a miss the database
answers and the value is *filled* with the stamp the lookup returned, which
the cache refuses if a writer touched a guard in between (see
docs/cache.md). Reads bypass the cache when the transaction has written to
the model, and for ``include_deleted`` reads.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper

from keel.domain.ports import Cache
from keel.infrastructure.cache._entities import attach_entity, cacheable, encode_entity, entity_guard, model_name
from keel.infrastructure.cache._tracking import cache_of, writes_pending
from keel.infrastructure.repository.pages import Page

if TYPE_CHECKING:
    from keel.infrastructure.repository.sqlalchemy import SqlAlchemyRepository

T = TypeVar("T")


async def read_through(
    repository: SqlAlchemyRepository[T], identity: tuple[Any, ...], load: Callable[[], Awaitable[T | None]]
) -> T | None:
    """``load()`` (the repository's ``session.get``), through the session's cache when it has one."""
    session = repository.session
    cache = cache_of(session)
    mapper: Mapper[Any] = inspect(repository.model)
    if cache is None or not cacheable(mapper) or writes_pending(session, mapper):
        return await load()
    if mapper.identity_key_from_primary_key(identity) in session.identity_map:
        return await load()  # session.get answers from the identity map, as without a cache
    name = model_name(mapper)
    guards = [entity_guard(name, identity), f"{name}:#all"]
    key = f"e:{guards[0]}"
    entry = await cache.lookup(key, guards)
    if entry.hit:
        entity: T | None = attach_entity(session, mapper, entry.value)
        if entity is not None:
            return entity
    entity = await load()
    if entity is not None:
        payload = encode_entity(entity)
        if payload is not None:
            await cache.fill(key, payload, entry, guards, ttl=repository.cache_ttl)
    return entity


async def cached_list(
    repository: Any, name: str, load: Callable[[], Awaitable[builtins.list[T]]], *, ttl: float | None = None
) -> builtins.list[T]:
    """``await load()``, cached under ``name`` until the next write to the repository's model.

    ``name`` must identify the query and its arguments (``f"low_stock:{limit}"``).
    Every write to the model moves its ``#lists`` guard on, so no cached list
    outlives a committed change. On the in-memory twin, and without a cache,
    it is just ``await load()``. ``ttl`` defaults to the repository's ``cache_ttl``.
    """
    found: builtins.list[T] = await _cached(
        repository, name, load, ttl, rebuild=lambda items, _: items, parts=lambda items: (items, {})
    )
    return found


async def cached_page(
    repository: Any, name: str, load: Callable[[], Awaitable[Page[T]]], *, ttl: float | None = None
) -> Page[T]:
    """:func:`cached_list` for a :class:`keel.Page` (``name`` must include the page number and size)."""

    def rebuild(items: builtins.list[T], extra: dict[str, Any]) -> Page[T]:
        return Page(items, extra["total"], extra["page"], extra["size"])

    def parts(page: Page[T]) -> tuple[builtins.list[T], dict[str, Any]]:
        return page.items, {"total": page.total, "page": page.page, "size": page.size}

    found: Page[T] = await _cached(repository, name, load, ttl, rebuild=rebuild, parts=parts)
    return found


async def _cached(
    repository: Any,
    name: str,
    load: Callable[[], Awaitable[Any]],
    ttl: float | None,
    *,
    parts: Callable[[Any], tuple[builtins.list[Any], dict[str, Any]]],
    rebuild: Callable[[builtins.list[Any], dict[str, Any]], Any],
) -> Any:
    session: AsyncSession | None = getattr(repository, "session", None)
    cache: Cache | None = cache_of(session) if isinstance(session, AsyncSession) else None
    mapper: Mapper[Any] = inspect(repository.model)
    if cache is None or session is None or not cacheable(mapper) or writes_pending(session, mapper):
        return await load()
    model = model_name(mapper)
    guards = [f"{model}:#lists"]
    key = f"l:{model}:{name}"
    entry = await cache.lookup(key, guards)
    if entry.hit:
        items = [attach_entity(session, mapper, payload) for payload in entry.value["items"]]
        if all(item is not None for item in items):
            for item in items:
                repository.mark_seen(item)
            return rebuild(items, entry.value["extra"])
    result = await load()
    items, extra = parts(result)
    payloads = [encode_entity(item) for item in items]
    if all(payload is not None for payload in payloads):
        ttl = ttl if ttl is not None else getattr(repository, "cache_ttl", None)
        await cache.fill(key, {"items": payloads, "extra": extra}, entry, guards, ttl=ttl)
    return result
