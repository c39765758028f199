"""The twin of :class:`keel.infrastructure.processed_commands.RecordProcessedCommands` for in-memory tests.

``InMemoryUnitOfWork(store, participants=[InMemoryProcessedCommands()])``
refuses a command whose id already committed to that store with
:class:`keel.CommandAlreadyHandledError`, as the SQL record does, so a
handler's behaviour under repeated idempotency keys can be unit-tested.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from datetime import datetime

from keel.domain.messages import DomainEvent, utcnow
from keel.infrastructure.repository.memory.store import InMemoryStore
from keel.infrastructure.repository.memory.unit_of_work import InMemoryUnitOfWork
from keel.service_layer.commands import CommandAlreadyHandledError, CommandContext, current_command
from keel.service_layer.participants import Participant


class InMemoryProcessedCommands(Participant[InMemoryUnitOfWork]):
    """Records each command's id in the unit of work's store when its transaction commits."""

    def __init__(self) -> None:
        self._records: weakref.WeakKeyDictionary[InMemoryStore, dict[str, tuple[str, datetime]]] = (
            weakref.WeakKeyDictionary()
        )
        self._recorded: weakref.WeakKeyDictionary[InMemoryUnitOfWork, CommandContext] = weakref.WeakKeyDictionary()

    def records(self, store: InMemoryStore) -> dict[str, tuple[str, datetime]]:
        """command id -> (command type, committed at) for ``store``."""
        return self._records.setdefault(store, {})

    async def after_flush(self, uow: InMemoryUnitOfWork, events: Sequence[DomainEvent]) -> None:
        """Refuse a command this store has already committed; otherwise record it with the commit."""
        context = current_command()
        if context is None or context.recorded:
            return
        records = self.records(uow.store)
        found = records.get(context.command_id)
        if found is not None:
            command_type, committed_at = found
            raise CommandAlreadyHandledError(
                f"command {context.command_id!r} was already handled; it is not applied again",
                command_id=context.command_id,
                command_type=command_type,
                committed_at=committed_at.isoformat(),
            )

        def record() -> None:
            records[context.command_id] = (context.command_type, utcnow())
            self._recorded[uow] = context

        uow.on_store_commit(record)

    async def after_commit(self, uow: InMemoryUnitOfWork, events: Sequence[DomainEvent]) -> None:
        """The unit of work knows its commit happened: the bus need not (and must not) run the command again."""
        context = self._recorded.pop(uow, None)
        if context is not None:
            context.recorded = True
