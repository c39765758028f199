"""The SQL repository's reads below its public methods: fetching, counting, loading by ids, keyset pages.

Kept apart from :mod:`.sqlalchemy` so the class there reads as its public
surface; these take the repository (or its session) and do the work.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, func, inspect, select
from sqlalchemy.exc import MultipleResultsFound, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from keel.cross_cutting.error import ConflictError
from keel.infrastructure.cache import read_through
from keel.infrastructure.database._translate import translating
from keel.infrastructure.repository._checks import coerce_identity, identity_list
from keel.infrastructure.repository._identity import key_conditions
from keel.infrastructure.repository._keyset import keyset_condition, plan_cursor_page
from keel.infrastructure.repository._sorting import OrderByArg, sort_keys
from keel.infrastructure.repository.pages import CursorPage
from keel.infrastructure.repository.soft_delete import INCLUDE_DELETED

if TYPE_CHECKING:
    from keel.infrastructure.repository.sqlalchemy import SqlAlchemyRepository


async def fetch(session: AsyncSession, entity: str, stmt: Select[Any]) -> list[Any]:
    """The distinct entities ``stmt`` returns (a joined eager load repeats none)."""
    with translating(entity=entity):
        result = await session.scalars(stmt)
        return list(result.unique().all())


async def fetch_one_or_none(session: AsyncSession, entity: str, stmt: Select[Any]) -> Any:
    """The one entity ``stmt`` returns, or None; a :class:`ConflictError` for more than one."""
    with translating(entity=entity):
        result = await session.scalars(stmt)
        try:
            return result.unique().one_or_none()
        except MultipleResultsFound:
            raise ConflictError(f"more than one {entity} matches", entity=entity) from None


async def count_rows(session: AsyncSession, entity: str, stmt: Select[Any]) -> int:
    """``SELECT count(*) FROM (stmt)``, with the statement's execution options (soft delete scope)."""
    counted = select(func.count()).select_from(stmt.order_by(None).subquery())
    counted = counted.execution_options(**stmt.get_execution_options())
    with translating(entity=entity):
        return int((await session.execute(counted)).scalar_one())


async def keyset_page(
    repo: SqlAlchemyRepository[Any],
    conditions: Sequence[Any],
    statement: Select[Any] | None,
    *,
    cursor: str | None,
    size: int,
    order_by: OrderByArg,
    mode: str,
    include_deleted: bool,
    only_deleted: bool,
) -> CursorPage[Any]:
    """The body of :meth:`SqlAlchemyRepository.paginate_by_cursor` (documented there)."""
    model = repo.model
    keys = sort_keys(model, order_by)
    plan = plan_cursor_page(
        model,
        keys=keys,
        # The statement is part of what the cursor is bound to.
        conditions=conditions if statement is None else [*conditions, statement],
        mode=mode,
        cursor=cursor,
        size=size,
        secret=repo._cursor_secret(),
    )
    # Without statement= when there is none, so a subclass's select() override from before it still works.
    if statement is None:
        stmt = repo.select(*conditions, include_deleted=include_deleted, only_deleted=only_deleted)
    else:
        stmt = repo.select(*conditions, statement=statement, include_deleted=include_deleted, only_deleted=only_deleted)
    if plan.boundary is not None:
        stmt = stmt.where(keyset_condition(model, plan.read_keys, plan.boundary))
    stmt = stmt.order_by(*(k.clause(model) for k in plan.read_keys)).limit(plan.fetch)
    rows = await fetch(repo.session, repo.traits.entity, stmt)
    result = plan.page(rows, lambda row: tuple(getattr(row, k.name) for k in keys))
    repo._mark_all_seen(result.items)
    return result


async def load_one(
    repo: SqlAlchemyRepository[Any],
    id: Any,
    *,
    include_deleted: bool,
    load: Sequence[Any],
    lock: dict[str, bool] | None,
) -> Any:
    """The body of :meth:`SqlAlchemyRepository.get_or_none` (documented at ``get``)."""
    session, model = repo.session, repo.model
    key = coerce_identity(model, id)
    if lock is not None:
        await lock_database_for_update(session, model)
    try:
        if lock is None and not load and not include_deleted:
            # The common read: SQLAlchemy's defaults for everything else, which
            # skip its option merging, as a hand-written session.get does.
            if repo.cache_ttl is None:
                entity = await session.get(model, key)
            else:
                entity = await read_through(repo, key, functools.partial(session.get, model, key))
        else:
            entity = await session.get(
                model,
                key,
                execution_options={INCLUDE_DELETED: True} if include_deleted else {},
                options=list(load) or None,
                with_for_update=lock,
                # A locked read refreshes the copy already held: its values must be the locked row's.
                populate_existing=lock is not None,
            )
    except SQLAlchemyError:
        # Translated here rather than under `with translating(...)` around the
        # read: a context manager per get costs more than the rest of this function.
        with translating(entity=repo.traits.entity):
            raise
    # session.get answers from the identity map without a flush, so a row
    # deleted in this unit of work but not flushed yet is still there.
    if entity is None or (session.sync_session._deleted and entity in session.deleted):
        return None
    if not include_deleted and repo._is_deleted(entity):
        return None
    repo.mark_seen(entity)
    return entity


async def list_with_total(
    repo: SqlAlchemyRepository[Any], stmt: Select[Any], limit: int | None, offset: int | None
) -> tuple[list[Any], int]:
    """The body of :meth:`SqlAlchemyRepository.list_and_count`: ``stmt`` is ordered, not yet limited."""
    if repo.count_with_window:
        return await windowed_list(repo, stmt, limit, offset)
    total = await count_rows(repo.session, repo.traits.entity, stmt)
    if (offset or 0) >= total or limit == 0:
        return [], total
    if limit is not None:
        stmt = stmt.limit(limit)
    if offset:
        stmt = stmt.offset(offset)
    return await repo.scalars(stmt), total


async def windowed_list(
    repo: SqlAlchemyRepository[Any], stmt: Select[Any], limit: int | None, offset: int | None
) -> tuple[list[Any], int]:
    """``list_and_count`` in one query: each row carries ``count(*) OVER ()``, the total before LIMIT."""
    windowed = stmt.add_columns(func.count().over().label("keel_total"))
    if limit is not None:
        windowed = windowed.limit(limit)
    if offset:
        windowed = windowed.offset(offset)
    with translating(entity=repo.traits.entity):
        rows = (await repo.session.execute(windowed)).unique().all()
    if not rows and offset:
        # Past the end no row carries the total: count it.
        return [], await count_rows(repo.session, repo.traits.entity, stmt)
    entities = [row[0] for row in rows]
    repo._mark_all_seen(entities)
    return entities, int(rows[0][1]) if rows else 0


async def load_many(
    repo: SqlAlchemyRepository[Any], ids: Iterable[Any], *, include_deleted: bool, load: Sequence[Any] = ()
) -> list[Any]:
    """The body of :meth:`SqlAlchemyRepository.get_many` (documented there)."""
    model = repo.model
    keys = list(dict.fromkeys(coerce_identity(model, i) for i in identity_list(ids)))
    if not keys:
        return []
    by_key: dict[tuple[Any, ...], Any] = {}
    dialect = repo.session.get_bind(mapper=inspect(model)).dialect.name
    primary_key = repo.traits.primary_key
    for condition in key_conditions(model, primary_key, keys, dialect):
        for entity in await fetch(
            repo.session, repo.traits.entity, repo.select(condition, include_deleted=include_deleted).options(*load)
        ):
            by_key[tuple(getattr(entity, name) for name in primary_key)] = entity
    found = [by_key[k] for k in keys if k in by_key]
    repo._mark_all_seen(found)
    return found


async def lock_database_for_update(session: AsyncSession, model: type[Any]) -> None:
    """On SQLite, take the database's write lock now (``BEGIN IMMEDIATE``): its stand-in for a row lock.

    SQLite has no row locks and the driver opens a transaction only at the
    first write, so a read-modify-write of a row without a version column
    would lose concurrent updates. Taking the write lock before the read
    makes such units of work take turns (waiting up to the busy timeout), as
    ``FOR UPDATE`` makes them on PostgreSQL. Elsewhere: nothing to do.
    """
    mapper = inspect(model)
    if session.get_bind(mapper=mapper).dialect.name != "sqlite":
        return
    with translating(entity=mapper.class_.__name__):
        conn = await session.connection(bind_arguments={"mapper": mapper})
        raw = await conn.get_raw_connection()
        if not getattr(raw.driver_connection, "in_transaction", True):
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
