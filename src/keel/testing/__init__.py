"""Test support for applications built on keel: in-memory twins and pytest fixtures.

:class:`InMemoryRepository` and :class:`InMemoryUnitOfWork` have the surface
and semantics of the SQLAlchemy ones (pages, cursors, soft delete, seen
aggregates, commit/rollback, events after commit) without a database, for
fast unit tests of handlers and services. :class:`InMemoryEventStore` is
the event store's twin.
"""

from __future__ import annotations

from keel.testing.event_store import InMemoryEventStore
from keel.testing.processed_commands import InMemoryProcessedCommands
from keel.testing.repository import InMemoryRepository, in_memory_twin
from keel.testing.store import InMemoryStore, Workspace
from keel.testing.unit_of_work import InMemoryUnitOfWork, in_memory_unit_of_work

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
