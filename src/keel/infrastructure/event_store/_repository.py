"""``EventSourcedRepository[A]``: event-sourced aggregates on a unit of work, like any repository.

``get`` loads the latest snapshot and the events after it. The unit of work
collects the aggregates' pending events as it does any aggregate's (so they
reach ``collect_new_events()`` and the bus once committed), and a commit
participant appends them, before the flush, with the version each aggregate
was loaded at as the expected version: a concurrent change is a
``ConcurrencyError``, which the message bus retries on a fresh load.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, Self, TypeVar

from keel.cross_cutting.error import ConfigurationError, NotFoundError
from keel.domain.messages import DomainEvent
from keel.domain.ports import EventStore
from keel.infrastructure.event_store._aggregate import EventSourcedAggregate
from keel.infrastructure.event_store._store import SqlAlchemyEventStore
from keel.service_layer.participants import Participant

if typing.TYPE_CHECKING:
    from keel.infrastructure.unit_of_work import SqlAlchemyUnitOfWork

A = TypeVar("A", bound=EventSourcedAggregate)
#: uow.__dict__ key of the participant shared by the unit of work's event-sourced repositories.
_PARTICIPANT = "_keel_event_sourcing"


class EventSourcedRepository(Generic[A]):
    """Loads and saves one kind of :class:`EventSourcedAggregate` through an event store.

    Declared on a unit of work (``accounts: EventSourcedRepository[Account]``),
    it is built per ``async with`` in that unit of work's transaction. A
    subclass can name the aggregate (``aggregate_type = Account``) and the
    snapshot period (``snapshot_every = 50``: a snapshot whenever a commit
    takes the stream across a multiple of 50). Built by hand, it takes any
    :class:`~keel.event_store.EventStore` (``InMemoryEventStore`` in unit
    tests) and saves with :meth:`save`.
    """

    aggregate_type: ClassVar[type[EventSourcedAggregate] | None] = None
    snapshot_every: ClassVar[int | None] = None

    def __init__(
        self,
        store: EventStore,
        aggregate_type: type[A] | None = None,
        *,
        uow: SqlAlchemyUnitOfWork | None = None,
    ) -> None:
        chosen = aggregate_type or type(self).aggregate_type
        if chosen is None or not issubclass(chosen, EventSourcedAggregate):
            raise ConfigurationError(
                f"{type(self).__name__} needs an EventSourcedAggregate class: declare "
                f"EventSourcedRepository[YourAggregate] or set aggregate_type",
            )
        self.aggregate: type[A] = chosen  # type: ignore[assignment]  # A is the declared aggregate type
        self.store = store
        self._uow = uow
        self._saver = _saver_of(uow) if uow is not None else None

    @classmethod
    def for_unit_of_work(cls, uow: SqlAlchemyUnitOfWork, model: type[Any] | None = None) -> Self:
        """The repository in ``uow``'s transaction (how a unit of work builds a declared one)."""
        if not hasattr(uow, "session_factory"):
            raise ConfigurationError(
                f"{cls.__name__} is declared on {type(uow).__name__}, which has no database session: "
                "declare it on a SqlAlchemyUnitOfWork, or in unit tests use "
                "EventSourcedRepository(InMemoryEventStore(), YourAggregate) and its save()",
            )
        store = SqlAlchemyEventStore(uow.session_factory).bind(uow)
        # The aggregates' events reach the unit of work as theirs (it pulls them on
        # commit): the store must not announce them a second time.
        store._uow = None
        return cls(store, model, uow=uow)

    def add(self, aggregate: A) -> A:
        """Track a new aggregate: its pending events start its stream on commit (a ``ConcurrencyError`` if taken)."""
        self._track(aggregate)
        return aggregate

    async def get(self, id: Any) -> A:
        """The aggregate ``id`` rebuilt from its snapshot and events; ``NotFoundError`` for an empty stream."""
        aggregate = await self.get_or_none(id)
        if aggregate is None:
            raise NotFoundError(entity=self.aggregate.__name__, id=id)
        return aggregate

    async def get_or_none(self, id: Any) -> A | None:
        """The aggregate ``id``, or None when its stream has no events."""
        aggregate = await self.load(id)
        if aggregate is not None:
            self._track(aggregate)
        return aggregate

    async def load(self, id: Any) -> A | None:
        """Rebuild the aggregate without tracking it (read-only use)."""
        cls = self.aggregate
        stream_id = cls.stream_id_for(id)
        aggregate: A | None = None
        if self.snapshot_every:
            snapshot = await self.store.load_snapshot(stream_id)
            if snapshot is not None and snapshot.schema_version == cls.snapshot_schema_version:
                aggregate = cls.restore_snapshot(id, snapshot.version, dict(snapshot.state))
        start = aggregate.version + 1 if aggregate is not None else 1
        tail = await self.store.read_stream(stream_id, from_version=start)
        if aggregate is None:
            if not tail:
                return None
            aggregate = cls(id)
        for recorded in tail:
            aggregate.replay(recorded.event, recorded.version)
        aggregate._mark_stored(aggregate.version)
        return aggregate

    async def save(self, aggregate: A) -> None:
        """Append the aggregate's pending events now (standalone use, without a unit of work)."""
        events = aggregate.pull_events()
        if events:
            await _append(self, aggregate)

    def _track(self, aggregate: A) -> None:
        if self._uow is None or self._saver is None:
            return
        self._uow.mark_seen(aggregate)
        self._saver.tracked[id(aggregate)] = (aggregate, self)


class _AppendPendingEvents(Participant["SqlAlchemyUnitOfWork"]):
    """Appends the tracked aggregates' events in the committing transaction, before the flush."""

    def __init__(self) -> None:
        self.tracked: dict[int, tuple[EventSourcedAggregate, EventSourcedRepository[Any]]] = {}
        self._saved: list[tuple[EventSourcedAggregate, int]] = []

    async def before_flush(self, uow: SqlAlchemyUnitOfWork, events: Sequence[DomainEvent]) -> None:
        self._saved = []
        for aggregate, repository in list(self.tracked.values()):
            if aggregate._unsaved():
                self._saved.append((aggregate, await _append(repository, aggregate, mark=False)))

    async def after_commit(self, uow: SqlAlchemyUnitOfWork, events: Sequence[DomainEvent]) -> None:
        for aggregate, version in self._saved:
            aggregate._mark_stored(version)
        self._saved = []


async def _append(
    repository: EventSourcedRepository[Any], aggregate: EventSourcedAggregate, *, mark: bool = True
) -> int:
    """Append the aggregate's unsaved events at its stored version (snapshotting when due); the new version."""
    unsaved = aggregate._unsaved()
    stored = aggregate.stored_version
    await repository.store.append(aggregate.stream_id, unsaved, expected_version=stored)
    version = stored + len(unsaved)
    every = repository.snapshot_every
    if every and version // every > stored // every and version == aggregate.version:
        await repository.store.save_snapshot(
            aggregate.stream_id,
            version,
            aggregate.snapshot_state(),
            schema_version=aggregate.snapshot_schema_version,
        )
    if mark:
        aggregate._mark_stored(version)
    return version


def _saver_of(uow: SqlAlchemyUnitOfWork) -> _AppendPendingEvents:
    """The unit of work's participant, added on first use; a new ``async with`` block starts it afresh."""
    saver = uow.__dict__.get(_PARTICIPANT)
    if not isinstance(saver, _AppendPendingEvents):
        saver = _AppendPendingEvents()
        uow.__dict__[_PARTICIPANT] = saver
        uow.participants.append(saver)
    elif not uow._seen:
        saver.tracked.clear()  # built at the start of a block: the previous block's aggregates are gone
    return saver
