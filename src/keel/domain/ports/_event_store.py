"""The event-store port: append-only streams of domain events with a global order."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from keel.domain.messages import DomainEvent
from keel.domain.streams import ANY, ExpectedVersion, RecordedEvent, Snapshot


class EventStore(Protocol):
    """Append-only streams of domain events with a global order.

    Its public path is ``keel.event_store.EventStore``, beside the
    implementation and the types it speaks.

    Implementation: ``keel.event_store.SqlAlchemyEventStore`` (PostgreSQL and
    SQLite). See docs/event-store.md for the guarantees.
    """

    async def append(
        self,
        stream_id: str,
        events: Sequence[DomainEvent],
        *,
        expected_version: ExpectedVersion = ANY,
        metadata: Mapping[str, Any] | None = None,
    ) -> builtins.list[RecordedEvent]:
        """Record ``events`` at the end of ``stream_id``; ``ConcurrencyError`` if the stream is not as expected.

        Idempotent: appending events whose ids are already recorded at the
        same place returns those records without writing.
        """
        ...

    async def append_many(
        self,
        appends: Iterable[tuple[str, Sequence[DomainEvent], ExpectedVersion]],
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> builtins.list[RecordedEvent]:
        """Append to many streams in one transaction: all of them or none."""
        ...

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> builtins.list[RecordedEvent]:
        """The stream's events between the versions (inclusive), oldest first unless ``backwards``."""
        ...

    async def read_all(
        self, *, after: int = 0, limit: int | None = None, types: Iterable[str | type[DomainEvent]] | None = None
    ) -> builtins.list[RecordedEvent]:
        """Events after global ``position``, in order, never skipping one a writer commits later."""
        ...

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 when it has no events)."""
        ...

    async def save_snapshot(
        self, stream_id: str, version: int, state: Mapping[str, Any], *, schema_version: int = 1
    ) -> None:
        """Keep ``state`` as the stream's snapshot at ``version`` (replacing an older one)."""
        ...

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The stream's latest snapshot, or None."""
        ...
