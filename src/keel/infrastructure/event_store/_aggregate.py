"""``EventSourcedAggregate``: an aggregate whose state is the result of its events.

Its state changes only in :meth:`~EventSourcedAggregate.apply`; a command
method checks its rules and calls :meth:`~EventSourcedAggregate.record`,
which applies the event and keeps it pending. Loading replays the stored
events (after a snapshot, when there is one) through the same ``apply``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from keel.domain.aggregate import AggregateRoot
from keel.domain.messages import DomainEvent

#: Events pulled by a committing unit of work, not yet confirmed stored (see ``pull_events``).
_UNSAVED = "_keel_unsaved_events"
#: The stream version the aggregate was loaded at (or last saved at).
_STORED = "_keel_stored_version"


class EventSourcedAggregate(AggregateRoot):
    """Base of event-sourced aggregates; subclasses implement :meth:`apply`.

    ``id`` is the aggregate's identity and its stream is
    ``f"{stream_prefix}-{id}"`` (``stream_prefix`` defaults to the class
    name). ``version`` counts the events applied, pending ones included.
    A subclass's ``__init__`` takes the id alone and sets the initial state
    (loading builds an empty aggregate with it, then replays).

    Snapshots default to the public attributes (everything in ``vars()``
    not starting with ``_``, except ``id`` and ``version``): override
    :meth:`snapshot_state` and :meth:`restore_snapshot` when the state is not
    JSON-ready, and raise ``snapshot_schema_version`` when its shape changes
    (older snapshots are then ignored, not misread).
    """

    stream_prefix: ClassVar[str]
    snapshot_schema_version: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "stream_prefix" not in cls.__dict__:
            cls.stream_prefix = cls.__name__

    def __init__(self, id: str) -> None:
        self.id = id
        self.version = 0

    @classmethod
    def stream_id_for(cls, id: object) -> str:
        """The stream holding the events of the aggregate ``id``."""
        return f"{cls.stream_prefix}-{id}"

    @property
    def stream_id(self) -> str:
        """This aggregate's stream."""
        return self.stream_id_for(self.id)

    @property
    def stored_version(self) -> int:
        """The stream's version when this aggregate was loaded or last committed (0 for a new one)."""
        stored: int = self.__dict__.get(_STORED, 0)
        return stored

    def apply(self, event: DomainEvent) -> None:
        """Change the state for ``event``: the only place the state changes. Never check rules here."""
        raise NotImplementedError(f"{type(self).__name__} must implement apply(event)")

    def record(self, event: DomainEvent) -> None:
        """Apply ``event`` and keep it pending: it is appended to the stream when the unit of work commits."""
        self.apply(event)
        self.version += 1
        self.pending_events.append(event)

    def replay(self, event: DomainEvent, version: int) -> None:
        """Apply a stored event (loading); it is not pending."""
        self.apply(event)
        self.version = version

    def snapshot_state(self) -> dict[str, Any]:
        """The state to snapshot, as JSON-ready data."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and k not in ("id", "version")}

    @classmethod
    def restore_snapshot(cls, id: str, version: int, state: dict[str, Any]) -> Self:
        """The aggregate as :meth:`snapshot_state` described it at ``version``."""
        aggregate = cls(id)
        vars(aggregate).update(state)
        aggregate.version = version
        return aggregate

    # --- the unit of work's side ---------------------------------------------------------

    def pull_events(self) -> list[DomainEvent]:
        """Hand the pending events to a committing unit of work, keeping them to append in that commit."""
        events = super().pull_events()
        if events:
            self.__dict__.setdefault(_UNSAVED, []).extend(events)
        return events

    def clear_events(self) -> None:
        """Drop pending and unsaved events (their unit of work rolled back)."""
        super().clear_events()
        self.__dict__.pop(_UNSAVED, None)

    def _unsaved(self) -> list[DomainEvent]:
        unsaved: list[DomainEvent] = self.__dict__.get(_UNSAVED, [])
        return unsaved

    def _mark_stored(self, version: int) -> None:
        self.__dict__.pop(_UNSAVED, None)
        self.__dict__[_STORED] = version
