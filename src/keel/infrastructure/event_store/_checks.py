"""Input checks of the event store: each bad input is a ``ValidationError`` with its own ``type``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keel.cross_cutting.error import ValidationError
from keel.domain.messages import DomainEvent
from keel.domain.streams import ExpectedVersion, StreamState
from keel.infrastructure.event_store.tables import STREAM_ID_LENGTH

#: Largest serialised event (its JSON text) the store accepts by default: 1 MiB.
DEFAULT_MAX_EVENT_BYTES = 1024 * 1024


def invalid(message: str, loc: str, kind: str, **details: Any) -> ValidationError:
    return ValidationError(message, errors=[{"loc": [loc], "msg": message, "type": kind}], **details)


def check_stream_id(stream_id: object) -> str:
    """``stream_id`` if it is a usable stream id (1..200 printable characters, no surrounding blanks)."""
    if not isinstance(stream_id, str):
        raise invalid(f"a stream id is a string, not {type(stream_id).__name__}", "stream_id", "invalid_stream_id")
    if not stream_id or len(stream_id) > STREAM_ID_LENGTH:
        raise invalid(
            f"a stream id has 1 to {STREAM_ID_LENGTH} characters (got {len(stream_id)})",
            "stream_id",
            "invalid_stream_id",
        )
    if stream_id != stream_id.strip() or not stream_id.isprintable():
        raise invalid(
            "a stream id has no leading or trailing blanks and no control characters", "stream_id", "invalid_stream_id"
        )
    return stream_id


def check_expected_version(expected: object) -> ExpectedVersion:
    if isinstance(expected, StreamState):
        return expected
    if isinstance(expected, int) and not isinstance(expected, bool) and expected >= 0:
        return expected
    raise invalid(
        f"expected_version is a version >= 0, NO_STREAM, STREAM_EXISTS or ANY, not {expected!r}",
        "expected_version",
        "invalid_expected_version",
    )


def check_events(stream_id: str, batch: Sequence[DomainEvent]) -> None:
    if not batch:
        raise invalid(f"nothing to append to stream {stream_id!r}: the batch is empty", "events", "empty_batch")
    seen = set()
    for event in batch:
        if not isinstance(event, DomainEvent):
            raise invalid(f"only DomainEvents can be appended, not {type(event).__name__}", "events", "not_an_event")
        if event.event_id in seen:
            raise invalid(f"event {event.event_id} appears twice in one batch", "events", "duplicate_event_id")
        seen.add(event.event_id)


def check_size(event: DomainEvent, size: int, limit: int) -> None:
    if size > limit:
        raise invalid(
            f"event {event.event_id} ({type(event).message_type}) is {size} bytes of JSON; the limit is {limit}",
            "events",
            "payload_too_large",
            size=size,
            limit=limit,
        )


def check_range(value: object, name: str, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise invalid(f"{name} is an integer >= {minimum}, not {value!r}", name, "invalid_range")
