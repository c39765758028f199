"""The event store: append-only streams of domain events, and aggregates built from them.

.. code-block:: python

    from keel.event_store import NO_STREAM, SqlAlchemyEventStore

    store = SqlAlchemyEventStore(session_factory)
    await store.append("account-1", [Opened(owner="ada")], expected_version=NO_STREAM)

See docs/event-store.md.

.. versionadded:: 0.3
"""

from __future__ import annotations

from keel.domain.ports import EventStore
from keel.domain.streams import ANY, NO_STREAM, STREAM_EXISTS, ExpectedVersion, RecordedEvent, Snapshot, StreamState
from keel.infrastructure.event_store._aggregate import EventSourcedAggregate
from keel.infrastructure.event_store._projection import Projection
from keel.infrastructure.event_store._repository import EventSourcedRepository
from keel.infrastructure.event_store._runner import ProjectionRunner, ProjectionStatus
from keel.infrastructure.event_store._store import SqlAlchemyEventStore
from keel.infrastructure.event_store._types import EventTypes, UnknownEventTypeError, Upcaster, default_event_types

__all__ = [
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "EventSourcedAggregate",
    "EventSourcedRepository",
    "EventStore",
    "EventTypes",
    "ExpectedVersion",
    "Projection",
    "ProjectionRunner",
    "ProjectionStatus",
    "RecordedEvent",
    "Snapshot",
    "SqlAlchemyEventStore",
    "StreamState",
    "UnknownEventTypeError",
    "Upcaster",
    "default_event_types",
]
