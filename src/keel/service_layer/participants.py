"""Commit participants: code that writes in, or reacts to, a unit of work's commit.

A unit of work runs its participants in order at three points of every
``commit()``:

* ``before_flush``: the work is not flushed yet; add objects to flush with it.
* ``after_flush``: the work is flushed inside the open transaction; write
  rows that must commit with it (the outbox, the event store, the record
  of the command being handled). An error here rolls the work back.
* ``after_commit``: the transaction committed (``uow.committed`` is true); an
  error propagates from ``commit()`` but the work stays committed.

A participant may also have an optional, synchronous ``commit_failed(uow,
events, error)``: called when the commit raised before it committed (a
flush refused with ``ConcurrencyError``, a participant's error, a
cancellation), just before ``error`` propagates. Telemetry ends its commit
span there. :class:`Participant` has it; the protocol does not require it.

The protocol lives here, in the service layer, so the domain and the bus can
name it; participants that need a session (:mod:`keel.infrastructure`) type
``uow`` as the SQLAlchemy unit of work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from keel.domain.messages import DomainEvent

if TYPE_CHECKING:
    from keel.service_layer.unit_of_work import AbstractUnitOfWork

U_contra = TypeVar("U_contra", bound="AbstractUnitOfWork", contravariant=True)


class CommitParticipant(Protocol[U_contra]):
    """What a unit of work calls at each phase of its commit; see the module docstring."""

    async def before_flush(self, uow: U_contra, events: Sequence[DomainEvent]) -> None:
        """The work is about to be flushed."""

    async def after_flush(self, uow: U_contra, events: Sequence[DomainEvent]) -> None:
        """The work is flushed; the transaction is still open."""

    async def after_commit(self, uow: U_contra, events: Sequence[DomainEvent]) -> None:
        """The transaction committed."""


class Participant(Generic[U_contra]):
    """A :class:`CommitParticipant` whose phases do nothing: override the ones you need."""

    async def before_flush(self, uow: U_contra, events: Sequence[DomainEvent]) -> None:
        """The work is about to be flushed."""

    async def after_flush(self, uow: U_contra, events: Sequence[DomainEvent]) -> None:
        """The work is flushed; the transaction is still open."""

    async def after_commit(self, uow: U_contra, events: Sequence[DomainEvent]) -> None:
        """The transaction committed."""

    def commit_failed(self, uow: U_contra, events: Sequence[DomainEvent], error: BaseException) -> None:
        """The commit raised ``error`` before committing; it propagates after this (see the module docstring)."""
