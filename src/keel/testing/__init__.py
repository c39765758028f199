"""Test support for applications built on keel: in-memory twins and pytest fixtures.

:class:`InMemoryRepository` and :class:`InMemoryUnitOfWork` have the surface
and semantics of the SQLAlchemy ones (pages, cursors, soft delete, seen
aggregates, commit/rollback, events after commit) without a database, for
fast unit tests of handlers and services. They live beside the SQL
implementation they twin, in :mod:`keel.infrastructure.repository.memory`;
this package is their public path. :class:`InMemoryEventStore` is the event
store's twin.
"""

from __future__ import annotations

from keel.infrastructure.repository.memory.processed_commands import InMemoryProcessedCommands
from keel.infrastructure.repository.memory.repository import InMemoryRepository, in_memory_twin
from keel.infrastructure.repository.memory.store import InMemoryStore
from keel.infrastructure.repository.memory.unit_of_work import InMemoryUnitOfWork, in_memory_unit_of_work
from keel.infrastructure.repository.memory.workspace import Workspace
from keel.testing.event_store import InMemoryEventStore

__all__ = [
    "InMemoryEventStore",
    "InMemoryProcessedCommands",
    "InMemoryRepository",
    "InMemoryStore",
    "InMemoryUnitOfWork",
    "Workspace",
    "in_memory_twin",
    "in_memory_unit_of_work",
]
