"""Set-based writes: ``update_many`` and ``delete_many`` as one statement each.

They change rows without loading them, so they keep the version and
timestamp columns moving themselves (a later version-checked save of a copy
loaded before still fails), and they synchronise only the copies the session
holds of the rows they really matched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, delete, inspect, update
from sqlalchemy.ext.asyncio import AsyncSession

from keel.domain.messages import utcnow
from keel.infrastructure.database._translate import translating
from keel.infrastructure.database.orm import ModelTraits
from keel.infrastructure.repository._checks import check_update_values
from keel.infrastructure.repository.filters import Condition, build_conditions


async def update_rows(
    session: AsyncSession,
    model: type[Any],
    traits: ModelTraits,
    where: Iterable[Condition],
    equals: Mapping[str, Any],
    *,
    values: Mapping[str, Any],
    include_deleted: bool,
) -> int:
    """``UPDATE model SET values, version + 1, updated_at WHERE ...``; the row count."""
    check_update_values(model, traits, values)
    conditions = build_conditions(model, where, equals)
    stmt = (
        update(model)
        .where(*conditions, *soft_delete_scope(model, traits, include_deleted))
        .values(**values, **change_marks(model, traits))
    )
    return await execute_dml(session, model, traits, stmt)


async def delete_rows(
    session: AsyncSession, model: type[Any], traits: ModelTraits, where: Iterable[Condition], equals: Mapping[str, Any]
) -> int:
    """A soft delete (``UPDATE ... SET deleted_at``) of live rows, or a ``DELETE``; the row count."""
    conditions = build_conditions(model, where, equals)
    deleted_at = traits.deleted_at
    if deleted_at is None:
        return await execute_dml(session, model, traits, delete(model).where(*conditions))
    now = utcnow()
    stmt = update(model).where(*conditions, *soft_delete_scope(model, traits, False))
    return await execute_dml(session, model, traits, stmt.values({deleted_at: now, **change_marks(model, traits, now)}))


async def execute_dml(session: AsyncSession, model: type[Any], traits: ModelTraits, stmt: Any) -> int:
    """Run a set-based statement, synchronising the copies of exactly the rows it matched."""
    # Never the default in-Python evaluation of the WHERE clause: it
    # matches held copies by their (possibly stale) values, so a copy
    # whose row the statement skipped took the new version and then
    # committed over a concurrent change, and delete_many dropped copies
    # of rows it never deleted. "fetch" reads the matched keys back
    # (RETURNING, or a SELECT first) and synchronises only those copies;
    # a stale one keeps a version below the row's, so saving it still
    # raises ConcurrencyError. Reading the keys back costs about as much
    # as the statement, so it is skipped when there is no copy to update.
    sync = "fetch" if holds_copies(session, model) else False
    stmt = stmt.execution_options(synchronize_session=sync)
    with translating(entity=traits.entity):
        result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


def holds_copies(session: AsyncSession, model: type[Any]) -> bool:
    """Whether the session holds (or is about to flush) any instance of this model's table hierarchy."""
    # By class, not by identity key: a subclass's rows can live in the
    # table the statement changes, whatever its mapper's identity class.
    root = inspect(model).base_mapper.class_
    return any(isinstance(obj, root) for obj in (*session.identity_map.values(), *session.new))


def change_marks(model: type[Any], traits: ModelTraits, now: Any = None) -> dict[str, Any]:
    """``version + 1`` and ``updated_at = now`` for set-based changes."""
    marks: dict[str, Any] = {}
    if traits.version is not None:
        marks[traits.version] = getattr(model, traits.version) + 1
    if traits.updated_at is not None:
        marks[traits.updated_at] = now or utcnow()
    return marks


def soft_delete_scope(model: type[Any], traits: ModelTraits, include_deleted: bool) -> list[ColumnElement[bool]]:
    """``deleted_at IS NULL`` unless deleted rows are included (or the model has no soft delete)."""
    deleted_at = traits.deleted_at
    if deleted_at is None or include_deleted:
        return []
    return [getattr(model, deleted_at).is_(None)]
