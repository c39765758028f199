"""The unit-of-work port: one atomic piece of work, events released on commit.

This is Cosmic Python's ``AbstractUnitOfWork`` made async: ``async with`` opens
it, ``commit()`` is a template method over ``_commit()``, leaving always rolls
back whatever was not committed, and the events of the aggregates it has seen
become available to :meth:`collect_new_events` only once their commit
succeeded.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self

from keel.domain.aggregate import AggregateRoot
from keel.domain.errors import UnitOfWorkError
from keel.domain.messages import DomainEvent
from keel.service_layer.participants import CommitParticipant

_logger = logging.getLogger("keel.unit_of_work")


class AbstractUnitOfWork(abc.ABC):
    """Base of every unit of work (SQLAlchemy, in-memory, event-sourced).

    Not safe to share between concurrent tasks: take a fresh one per use
    (the container and the message bus do).

    ``participants`` (after the class's :attr:`commit_participants`) run at
    each phase of every commit, in order; see :mod:`keel.service_layer.participants`.
    """

    #: Participants every instance of the class starts with.
    commit_participants: ClassVar[Sequence[CommitParticipant[Any]]] = ()

    def __init__(self, *, participants: Iterable[CommitParticipant[Any]] = ()) -> None:
        #: This instance's commit participants, in the order they run; append to add one.
        self.participants: list[CommitParticipant[Any]] = [*type(self).commit_participants, *participants]
        self._open = False
        self._seen: dict[int, AggregateRoot] = {}
        self._new_events: deque[DomainEvent] = deque()
        #: True once this instance has committed (in any of its ``async with`` blocks).
        #: The message bus reads it: an attempt whose work committed is not run again.
        self.committed = False
        self._committed_in_block = False

    @property
    def is_open(self) -> bool:
        """True between ``__aenter__`` and ``__aexit__``."""
        return self._open

    async def __aenter__(self) -> Self:
        if self._open:
            raise UnitOfWorkError(
                f"{type(self).__name__} is already open; a unit of work is entered by one task at a time"
            )
        self._seen = {}
        self._committed_in_block = False
        await self._begin()
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Rolling back after a commit is harmless; doing it unconditionally
        # means an exception, a return or a cancellation never leaks work.
        # A close that has a transaction to roll back runs in its own task
        # under shield so that cancelling the caller cannot skip it (the
        # connection would go back to the pool mid-transaction otherwise).
        # Without one (after a commit, or before any query) it does no I/O, so
        # it never suspends and a cancellation cannot land inside it: it is
        # awaited directly, saving a task per unit of work.
        try:
            self._discard_pending_events()
            try:
                if self._close_needs_shield():
                    await asyncio.shield(asyncio.ensure_future(self._close()))
                else:
                    await self._close()
            except Exception as failure:
                if exc is None and not self._committed_in_block:
                    raise  # _close raises keel errors: nothing else went wrong, so this is the news
                # A body's error is what the caller must see: raising here would
                # replace it (leaving it only as __context__). After a commit, the
                # work is durable and only a rollback of what followed failed (the
                # server drops that with the connection): raising would make the
                # caller think the work failed, and retry it.
                _logger.warning(
                    "%s: cleanup failed while leaving (%s)",
                    type(self).__name__,
                    "after a commit" if exc is None else f"on {exc!r}",
                    exc_info=failure,
                )
                if exc is not None:
                    exc.add_note(f"{type(self).__name__}: the cleanup after this error failed too: {failure}")
        finally:
            self._open = False
            self._seen = {}

    async def commit(self) -> None:
        """Make the work durable, release the seen aggregates' events, then run ``after_commit``."""
        self._require_open("commit")
        events = self._pull_events()
        try:
            await self._commit(events)
        except BaseException as error:
            self._commit_failed(events, error)
            raise
        self.committed = True
        self._committed_in_block = True
        self._new_events.extend(events)
        for participant in self.participants:
            await participant.after_commit(self, events)

    async def rollback(self) -> None:
        """Undo the work done since the last commit; recorded events are dropped."""
        self._require_open("rollback")
        self._discard_pending_events()
        await self._rollback()

    def collect_new_events(self) -> Iterator[DomainEvent]:
        """Yield (and forget) the events of committed work, oldest first."""
        while self._new_events:
            yield self._new_events.popleft()

    def mark_seen(self, aggregate: object) -> None:
        """Track ``aggregate`` so its events are collected on commit."""
        if isinstance(aggregate, AggregateRoot):
            self._seen[id(aggregate)] = aggregate

    @property
    def seen(self) -> list[AggregateRoot]:
        """The aggregates this unit of work has handed out or been given."""
        return list(self._candidates())

    def _candidates(self) -> Iterable[AggregateRoot]:
        """Aggregates whose events belong to this unit of work; subclasses add more."""
        return self._seen.values()

    def _pull_events(self) -> list[DomainEvent]:
        events: list[DomainEvent] = []
        for aggregate in self._candidates():
            events.extend(aggregate.pull_events())
        return events

    def _discard_pending_events(self) -> None:
        for aggregate in self._candidates():
            aggregate.clear_events()

    def _require_open(self, action: str) -> None:
        if not self._open:
            raise UnitOfWorkError(f"cannot {action}: {type(self).__name__} is not open (use `async with uow:`)")

    @abc.abstractmethod
    async def _begin(self) -> None:
        """Start the work (open a session, build repositories)."""

    async def _before_flush(self, events: Sequence[DomainEvent]) -> None:
        """Run the participants' ``before_flush`` phase (``_commit`` calls it)."""
        for participant in self.participants:
            await participant.before_flush(self, events)

    async def _after_flush(self, events: Sequence[DomainEvent]) -> None:
        """Run the participants' ``after_flush`` phase (``_commit`` calls it)."""
        for participant in self.participants:
            await participant.after_flush(self, events)

    def _commit_failed(self, events: Sequence[DomainEvent], error: BaseException) -> None:
        """Tell the participants that have a ``commit_failed`` phase; their own errors are logged, not raised."""
        for participant in self.participants:
            hook = getattr(participant, "commit_failed", None)
            if hook is None:
                continue
            try:
                hook(self, events, error)
            except Exception:
                # The commit's error is the news: a failing observer must not replace it.
                _logger.exception(
                    "%s.commit_failed raised; the commit's own error propagates", type(participant).__name__
                )

    @abc.abstractmethod
    async def _commit(self, events: list[DomainEvent]) -> None:
        """Persist the work atomically, running the flush phases of the participants around the flush."""

    @abc.abstractmethod
    async def _rollback(self) -> None:
        """Undo uncommitted work."""

    def _close_needs_shield(self) -> bool:
        """Whether :meth:`_close` may suspend (roll back over the network): then it runs shielded."""
        return True

    @abc.abstractmethod
    async def _close(self) -> None:
        """Roll back anything uncommitted and release resources."""
