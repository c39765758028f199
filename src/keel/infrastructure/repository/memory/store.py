"""The in-memory "database" behind :class:`InMemoryUnitOfWork`.

:class:`InMemoryStore` holds committed rows as private copies, so nothing a
test does to an entity it holds changes the store until a unit of work
commits it, just as with a real database. Each unit of work reads and writes
it through a :class:`~keel.infrastructure.repository.memory.workspace.Workspace`,
its transaction.

Share one store between several unit-of-work instances (a message bus's
``uow_factory``) to give them the same data.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from typing import Any

from keel.config import KeelSettings, RepositorySettings
from keel.infrastructure.repository.memory._rows import Key
from keel.infrastructure.repository.memory.workspace import Workspace
from keel.infrastructure.repository.settings import REPOSITORY_SETTINGS, checked_repository_settings


class InMemoryStore:
    """Committed rows of every model, keyed by primary key, in insertion order.

    ``repository_settings`` plays the part of a session factory's: repositories
    on this store take page sizes and the cursor secret from their own class,
    else from these, else from the process-wide defaults, the SQL order.
    """

    def __init__(self, *, repository_settings: KeelSettings | RepositorySettings | None = None) -> None:
        #: What a session's ``info`` carries to the SQL repositories: their settings, when given.
        self.info: dict[str, Any] = {}
        if repository_settings is not None:
            self.info[REPOSITORY_SETTINGS] = checked_repository_settings(repository_settings)
        self._tables: dict[type[Any], dict[Key, Any]] = {}
        self._sequences: dict[type[Any], Iterator[int]] = {}
        #: How many unit-of-work commits reached this store.
        self.commits = 0

    def table(self, model: type[Any]) -> dict[Key, Any]:
        """The committed rows of ``model`` (private copies: read, never mutate)."""
        return self._tables.setdefault(model, {})

    def all(self, model: type[Any]) -> list[Any]:
        """Copies of every committed row of ``model``, soft-deleted ones included."""
        return [copy.deepcopy(row) for row in self.table(model).values()]

    def add(self, *entities: Any) -> None:
        """Seed committed rows directly (test setup), with defaults applied."""
        workspace = Workspace(self)
        for entity in entities:
            workspace.add(type(entity), entity)
        workspace.commit()
        workspace.close()

    def clear(self) -> None:
        self._tables.clear()

    def next_id(self, model: type[Any]) -> int:
        """The next value of ``model``'s integer key: never reused, never rolled back."""
        sequence = self._sequences.get(model)
        if sequence is None:
            start = max((k[0] for k in self.table(model) if isinstance(k[0], int)), default=0) + 1
            sequence = self._sequences[model] = itertools.count(start)
        return next(sequence)
