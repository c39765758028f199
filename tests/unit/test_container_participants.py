"""KeelContainer: the commit participants its units of work get, and how an application changes them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dependency_injector import providers
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel import Participant, SqlAlchemyUnitOfWork
from keel.config import KeelSettings
from keel.container import KeelContainer, running
from keel.domain.messages import DomainEvent
from keel.infrastructure.audit import RecordAudit
from keel.infrastructure.processed_commands import RecordProcessedCommands
from keel.outbox import OutboxWriter


class Noted(Participant[SqlAlchemyUnitOfWork]):
    def __init__(self) -> None:
        self.commits = 0

    async def after_commit(self, uow: SqlAlchemyUnitOfWork, events: Sequence[DomainEvent]) -> None:
        self.commits += 1


class OwnInit(SqlAlchemyUnitOfWork):
    """An application unit of work whose constructor knows nothing of participants."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(session_factory)


noted = Noted()


class NotedContainer(KeelContainer):
    unit_of_work_class = providers.Object(OwnInit)
    commit_participants = providers.List(providers.Singleton(RecordProcessedCommands), providers.Object(noted))


def settings(tmp_path: Path) -> KeelSettings:
    # No cache: its invalidation participant would join every list these tests compare.
    return KeelSettings(database={"url": f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"}, cache={"backend": "none"})


async def test_the_containers_units_of_work_record_the_commands_they_commit(tmp_path: Path) -> None:
    """By default the container's units of work share RecordProcessedCommands, RecordAudit and the outbox writer."""
    container = KeelContainer()
    container.settings.override(providers.Object(settings(tmp_path)))
    async with running(container):
        first, second = container.unit_of_work(), container.unit_of_work()
        assert [type(p) for p in first.participants] == [RecordProcessedCommands, RecordAudit, OutboxWriter]
        assert first.participants[0] is second.participants[0]
        assert first.participants[1] is second.participants[1]


async def test_a_subclass_adds_participants_to_a_unit_of_work_with_its_own_init(tmp_path: Path) -> None:
    """Redefining `commit_participants` reaches units of work whose `__init__` takes only the session factory."""
    container = NotedContainer()
    container.settings.override(providers.Object(settings(tmp_path)))
    async with running(container):
        uow = container.unit_of_work()
        assert isinstance(uow, OwnInit)
        assert [type(p) for p in uow.participants] == [RecordProcessedCommands, Noted]
        async with uow:
            await uow.commit()  # outside a command: nothing is recorded, so no keel table is needed
        assert noted.commits == 1


async def test_an_instance_override_can_turn_recording_off(tmp_path: Path) -> None:
    """`container.commit_participants.override(providers.List())` gives units of work without participants."""
    container = KeelContainer()
    container.settings.override(providers.Object(settings(tmp_path)))
    container.commit_participants.override(providers.List())
    async with running(container):
        assert container.unit_of_work().participants == []
