"""Commit participants: code that writes in, or reacts to, a unit of work's commit.

A unit of work runs its participants in order at three points of every
``commit()``:

* ``before_flush``: the work is not flushed yet; add objects to flush with it.
* ``after_flush``: the work is flushed inside the open transaction; write
  rows that must commit with it (the outbox, the event store, the record
  of the command being handled). An error here rolls the work back.
* ``after_commit``: the transaction committed (``uow.committed`` is true); an
  error propagates from ``commit()`` but the work stays committed.

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
