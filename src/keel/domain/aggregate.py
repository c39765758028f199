"""The aggregate root: the consistency boundary that records domain events."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keel.domain.messages import DomainEvent

_EVENTS = "_keel_pending_events"


class AggregateRoot:
    """Mixin for aggregates, declarative or imperatively mapped.

    A plain class, not a pydantic model, so it combines with SQLAlchemy's
    declarative metaclass. The pending-event list is created on first use
    because the ORM builds loaded instances without calling ``__init__``.
    """

    __slots__ = ()

    @property
    def pending_events(self) -> list[DomainEvent]:
        """Events recorded since the last commit (a live list)."""
        events: list[DomainEvent] | None = self.__dict__.get(_EVENTS)
        if events is None:
            events = self.__dict__[_EVENTS] = []
        return events

    def record(self, event: DomainEvent) -> None:
        """Record ``event``; it is dispatched after the unit of work commits."""
        self.pending_events.append(event)

    def pull_events(self) -> list[DomainEvent]:
        """Remove and return the pending events, oldest first."""
        events = self.__dict__.pop(_EVENTS, None)
        return events or []

    def clear_events(self) -> None:
        """Drop the pending events (their work was rolled back)."""
        self.__dict__.pop(_EVENTS, None)
