"""The writes of :class:`InMemoryRepository` that act at once, as a mixin it inherits.

The twins of :class:`keel.infrastructure.repository._sql_writes.SqlWrites`:
``insert_many``, ``update_many``, ``delete_many``, ``hard_delete``,
``get_or_create`` and ``upsert``, evaluated on the workspace's rows.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from keel.cross_cutting.error import ValidationError
from keel.domain.messages import utcnow
from keel.infrastructure.repository._base import RepositoryBase
from keel.infrastructure.repository._checks import check_update_values
from keel.infrastructure.repository._insert_many import (
    attribute_rows,
    bulk_shape,
    carries_related,
    insert_items,
    new_from_mapping,
)
from keel.infrastructure.repository.filters import Condition, build_conditions
from keel.infrastructure.repository.memory import _upsert
from keel.infrastructure.repository.memory._evaluate import compile_where, matches
from keel.infrastructure.repository.memory._rows import apply_insert_defaults, identity_of
from keel.infrastructure.repository.memory.workspace import Workspace

if TYPE_CHECKING:
    from keel.infrastructure.repository.memory.repository import InMemoryRepository

T = TypeVar("T")


class MemoryWrites(RepositoryBase[T]):
    """Writes that reach the workspace at once; mixed into :class:`InMemoryRepository`."""

    workspace: Workspace

    @property
    def _memory_repository(self) -> InMemoryRepository[T]:
        # Only ever mixed into InMemoryRepository, which the helpers take.
        return cast("InMemoryRepository[T]", self)

    async def insert_many(self, items: Iterable[T] | Iterable[Mapping[str, Any]]) -> int:
        """Write many new rows now; the entities are not tracked afterwards (as in SQL)."""
        entities, mappings = insert_items(self, builtins.list(items))
        if not entities:
            entities = [new_from_mapping(self.model, row) for row in attribute_rows(self.model, mappings)]
        keyed = [all(part is not None for part in identity_of(self.model, e)) for e in entities]
        if any(keyed) and not all(keyed) and self.traits.primary_key:
            raise ValidationError(
                f"insert_many needs every {self.traits.entity} with a key, or every one without",
                errors=[{"loc": ["items"], "msg": "some entities have keys and some do not", "type": "value_error"}],
            )
        # Where the SQL repository falls back to add_many plus a flush, the
        # entities stay tracked there, so they do here.
        tracked = bool(bulk_shape(self.model).unsupported) or carries_related(self.model, entities)
        self.workspace.flush()
        for entity in entities:
            self.workspace.add(self.model, entity)
            apply_insert_defaults(self.model, entity)
            if not tracked:
                self.workspace.detach(self.model, entity)
            self.mark_seen(entity)
        return len(entities)

    async def hard_delete(self, entity: T) -> None:
        """Delete the row for good (version-checked on commit)."""
        self._check_type(entity)
        self.mark_seen(entity)
        self.workspace.remove(self.model, entity)

    async def update_many(
        self,
        *where: Condition,
        values: Mapping[str, Any],
        include_deleted: bool = False,
        **equals: Any,
    ) -> int:
        """Set ``values`` on every matching row; returns how many rows changed."""
        check_update_values(self.model, self.traits, values)
        keys = self._matched_keys(where, equals, include_deleted=include_deleted)
        now = utcnow()
        for key in keys:
            self.workspace.set_row(self.model, key, dict(values), now)
        return len(keys)

    async def delete_many(self, *where: Condition, **equals: Any) -> int:
        """Delete every matching row (soft when the model supports it); returns the count."""
        keys = self._matched_keys(where, equals, include_deleted=False)
        now = utcnow()
        for key in keys:
            if self.traits.deleted_at is not None:
                self.workspace.set_row(self.model, key, {self.traits.deleted_at: now}, now)
            else:
                self.workspace.delete_row(self.model, key)
        return len(keys)

    async def get_or_create(self, defaults: Mapping[str, Any] | None = None, **keys: Any) -> tuple[T, bool]:
        """The live entity matching ``keys``, else a new one; see :meth:`keel.SqlAlchemyRepository.get_or_create`."""
        return await _upsert.get_or_create(self._memory_repository, defaults, keys)

    async def upsert(self, entity: T, conflict: Sequence[str] | None = None) -> T:
        """Insert or update on ``conflict``; see :meth:`keel.SqlAlchemyRepository.upsert`."""
        result: T = await _upsert.upsert(self._memory_repository, entity, conflict)
        return result

    def _matched_keys(
        self, where: Iterable[Condition], equals: Mapping[str, Any], *, include_deleted: bool
    ) -> builtins.list[Any]:
        """Keys of the rows a set-based statement matches: evaluated on the rows, not on held copies."""
        self._check_deleted_scope(include_deleted, False)
        evaluators = [compile_where(self.model, c) for c in build_conditions(self.model, where, equals)]
        self.workspace.flush()
        keys = []
        for key in self.workspace.keys(self.model):
            row = self.workspace.current(self.model, key)
            if row is None or (not include_deleted and self._is_deleted(row)):
                continue
            if all(matches(e, row) for e in evaluators):
                keys.append(key)
        return keys
