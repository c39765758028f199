"""Event streams as the domain sees them: expected versions and recorded events.

The event store port (:class:`keel.domain.ports.EventStore`) speaks these
types; they live in the domain so aggregates, handlers and the port can name
them without importing the infrastructure.

.. versionadded:: 0.3
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from keel.domain.messages import DomainEvent


class StreamState(enum.Enum):
    """An expected version that is not a number: what the stream must look like before an append."""

    #: The stream must not exist yet (no event recorded in it); the same as expected version 0.
    NO_STREAM = "no_stream"
    #: The stream must exist (hold at least one event), whatever its version.
    STREAM_EXISTS = "stream_exists"
    #: No check at all: append after whatever is there.
    ANY = "any"

    def __repr__(self) -> str:
        return self.name


NO_STREAM: Final = StreamState.NO_STREAM
STREAM_EXISTS: Final = StreamState.STREAM_EXISTS
ANY: Final = StreamState.ANY

#: What ``append`` takes as ``expected_version``: the exact current version (0 for a new stream) or a state.
ExpectedVersion = int | StreamState


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One event as the store recorded it.

    ``version`` is its 1-based place in its stream, ``position`` its place in
    the store's global order (increasing, with gaps where a transaction
    rolled back), ``metadata`` the correlation/causation ids, principal and
    trace context written beside it (plus what the caller added).
    """

    stream_id: str
    version: int
    position: int
    event: DomainEvent
    metadata: Mapping[str, Any] = field(default_factory=dict)
    recorded_at: datetime | None = None

    @property
    def event_id(self) -> UUID:
        """The event's id (idempotency key of the append)."""
        return self.event.event_id

    @property
    def event_type(self) -> str:
        """The event's stable type name (its ``message_type``)."""
        return type(self.event).message_type


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A stream's state at ``version``, saved so loading need not replay from the start.

    A cache: deleting every snapshot loses nothing, loads only get slower.
    ``state`` is JSON-ready data; ``schema_version`` lets a new shape of the
    state ignore snapshots taken by older code.
    """

    stream_id: str
    version: int
    state: Mapping[str, Any]
    schema_version: int = 1
    taken_at: datetime | None = None
