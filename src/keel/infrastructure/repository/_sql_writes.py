"""The set-based writes of :class:`SqlAlchemyRepository`, as a mixin it inherits.

``insert_many``, ``update_many``, ``delete_many``, ``hard_delete``,
``get_or_create`` and ``upsert`` write now (not on flush); their bodies live in
:mod:`._insert_many`, :mod:`._set_based` and :mod:`._upsert`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncSession

from keel.infrastructure.database._translate import require_attachable, translating
from keel.infrastructure.repository._base import RepositoryBase
from keel.infrastructure.repository._insert_many import insert_many
from keel.infrastructure.repository._set_based import delete_rows, update_rows
from keel.infrastructure.repository._upsert import get_or_create, upsert
from keel.infrastructure.repository.filters import Condition
from keel.infrastructure.repository.soft_delete import load_hidden_dependents

if TYPE_CHECKING:
    from keel.infrastructure.repository.sqlalchemy import SqlAlchemyRepository

T = TypeVar("T")


class SqlWrites(RepositoryBase[T]):
    """Writes that go to the database at once; mixed into :class:`SqlAlchemyRepository`."""

    session: AsyncSession

    @property
    def _sql_repository(self) -> SqlAlchemyRepository[T]:
        # Only ever mixed into SqlAlchemyRepository, which the helpers take.
        return cast("SqlAlchemyRepository[T]", self)

    async def insert_many(self, items: Iterable[T] | Iterable[Mapping[str, Any]]) -> int:
        """Write many new rows now, set-based; returns how many.

        For bulk loads: one INSERT in insertmanyvalues batches, keel's columns
        and Python-side defaults filled in (on the entities too), generated
        keys read back. The entities are *not* kept in the session (later
        changes to them are not saved); aggregates among them are still seen.
        ``items`` may be mappings of attribute values instead. Models or
        entities the set-based path cannot serve fall back to
        :meth:`add_many` plus a flush (see docs/repositories.md).
        """
        return await insert_many(self._sql_repository, items)

    async def hard_delete(self, entity: T) -> None:
        """Delete the row for good (version-checked when the model has a version).

        Relationships the delete cascades through (or unlinks) are reloaded
        with their soft-deleted rows first, so those are deleted or unlinked
        too instead of being left behind pointing at a missing row.
        """
        self._check_type(entity)
        require_attachable(self.session, entity, self.traits.entity)
        self.mark_seen(entity)
        with translating(entity=self.traits.entity):
            await load_hidden_dependents(self.session, entity)
            await self.session.delete(entity)

    async def update_many(
        self,
        *where: Condition,
        values: Mapping[str, Any],
        include_deleted: bool = False,
        **equals: Any,
    ) -> int:
        """One ``UPDATE ... WHERE``: set ``values`` on every matching row; returns the row count.

        ``version`` rises by one and ``updated_at`` moves on every row it
        touches, so later version-checked saves of copies loaded before it
        fail as they should. It does not check versions itself (there is no
        held version for rows never loaded): use the unit of work for
        read-check-write changes. Soft-deleted rows are skipped unless
        ``include_deleted=True``.
        """
        self._check_deleted_scope(include_deleted, False)
        return await update_rows(
            self.session, self.model, self.traits, where, equals, values=values, include_deleted=include_deleted
        )

    async def delete_many(self, *where: Condition, **equals: Any) -> int:
        """Delete every matching row in one statement; returns the row count.

        Soft (an ``UPDATE`` setting ``deleted_at``, ``version`` and
        ``updated_at`` of rows not yet deleted) when the model supports it,
        a ``DELETE`` otherwise. No per-row version check, as with
        :meth:`update_many`.
        """
        return await delete_rows(self.session, self.model, self.traits, where, equals)

    async def get_or_create(self, defaults: Mapping[str, Any] | None = None, **keys: Any) -> tuple[T, bool]:
        """The live entity matching ``keys``, else a new one from ``keys`` and ``defaults``; and whether it was created.

        Safe under concurrency: ``INSERT ... ON CONFLICT DO NOTHING`` then a
        read, so racing callers get one row, and none an error. ``keys``
        must be covered by the primary key, a unique constraint or a unique
        index (else :class:`ConfigurationError`). The new row is written at
        once (``version`` 1, timestamps set) and the entity is in this unit
        of work, seen. A soft-deleted row holding the key is not brought
        back: with a unique index over live rows a new row is made, with a
        full unique key it is a :class:`ConflictError`.
        """
        return await get_or_create(self._sql_repository, defaults, keys)

    async def upsert(self, entity: T, conflict: Sequence[str] | None = None) -> T:
        """Insert ``entity``'s row, or update the row it conflicts with on ``conflict`` (default: the key).

        One ``INSERT ... ON CONFLICT DO UPDATE``: every column the new
        ``entity`` sets is written; on update ``version`` rises by one,
        ``updated_at`` moves, ``created_at`` stays, and a soft-deleted row is
        restored. Returns the stored entity (loaded in this unit of work,
        seen); ``entity`` itself stays unsaved. No version check: the last
        writer wins, as with :meth:`update_many`.
        """
        stored: T = await upsert(self._sql_repository, entity, conflict)
        return stored
