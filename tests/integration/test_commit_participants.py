"""Commit participants: ordered phases around the flush and after the commit, on SQL and the twin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel import CommitParticipant, Participant, SqlAlchemyUnitOfWork
from keel.domain.messages import DomainEvent
from keel.service_layer.unit_of_work import AbstractUnitOfWork
from keel.testing import InMemoryRepository, InMemoryUnitOfWork
from tests.models import AppUnitOfWork, Counter, Product, accounts


class Recorder(Participant[AbstractUnitOfWork]):
    """Notes every phase it sees, with the unit of work's committed flag at that moment."""

    def __init__(self, name: str, log: list[tuple[str, str, bool]]) -> None:
        self.name = name
        self.log = log

    async def before_flush(self, uow: AbstractUnitOfWork, events: Sequence[DomainEvent]) -> None:
        self.log.append((self.name, "before_flush", uow.committed))

    async def after_flush(self, uow: AbstractUnitOfWork, events: Sequence[DomainEvent]) -> None:
        self.log.append((self.name, "after_flush", uow.committed))

    async def after_commit(self, uow: AbstractUnitOfWork, events: Sequence[DomainEvent]) -> None:
        self.log.append((self.name, "after_commit", uow.committed))


class WritesAnAccount(Participant[SqlAlchemyUnitOfWork]):
    """Writes a row of its own in the committing transaction, as the outbox will."""

    async def after_flush(self, uow: SqlAlchemyUnitOfWork, events: Sequence[DomainEvent]) -> None:
        # The work is already flushed: the product row is visible to this statement.
        stock = (await uow.session.execute(select(func.sum(Product.stock)))).scalar_one()
        await uow.session.execute(insert(accounts).values(ref=f"stock-{stock}", balance=stock, version=1))


class Fails(Participant[AbstractUnitOfWork]):
    def __init__(self, phase: str) -> None:
        self.phase = phase

    async def after_flush(self, uow: AbstractUnitOfWork, events: Sequence[DomainEvent]) -> None:
        if self.phase == "after_flush":
            raise RuntimeError("participant failed before the commit")

    async def after_commit(self, uow: AbstractUnitOfWork, events: Sequence[DomainEvent]) -> None:
        if self.phase == "after_commit":
            raise RuntimeError("participant failed after the commit")


class TwinUnitOfWork(InMemoryUnitOfWork):
    counters: InMemoryRepository[Counter]


EXPECTED_ORDER = [
    ("a", "before_flush", False),
    ("b", "before_flush", False),
    ("a", "after_flush", False),
    ("b", "after_flush", False),
    ("a", "after_commit", True),
    ("b", "after_commit", True),
]


def test_the_participant_base_satisfies_the_protocol() -> None:
    """`Participant` is a ready-made `CommitParticipant`: subclasses override only the phases they need."""
    participant: CommitParticipant[AbstractUnitOfWork] = Recorder("a", [])
    assert isinstance(participant, Participant)


async def test_participants_run_in_order_at_each_phase(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """Each phase runs every participant in list order; after_commit sees `committed` already true."""
    log: list[tuple[str, str, bool]] = []
    uow = AppUnitOfWork(session_factory, participants=[Recorder("a", log), Recorder("b", log)])
    async with uow:
        uow.counters.add(Counter(id=1))
        await uow.commit()
    assert log == EXPECTED_ORDER


async def test_the_twin_runs_participants_in_the_same_order() -> None:
    """The in-memory unit of work calls the same phases in the same order (both flush phases before its commit)."""
    log: list[tuple[str, str, bool]] = []
    uow = TwinUnitOfWork(participants=[Recorder("a", log), Recorder("b", log)])
    async with uow:
        uow.counters.add(Counter(id=1))
        await uow.commit()
    assert log == EXPECTED_ORDER


async def test_class_participants_run_before_the_instance_ones(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """`commit_participants` on the class come first; `participants=` and `uow.participants.append` follow."""
    log: list[tuple[str, str, bool]] = []

    class Audited(AppUnitOfWork):
        commit_participants: ClassVar[Sequence[CommitParticipant[Any]]] = (Recorder("class", log),)

    uow = Audited(session_factory, participants=[Recorder("init", log)])
    uow.participants.append(Recorder("appended", log))
    async with uow:
        await uow.commit()
    assert [name for name, phase, _ in log if phase == "after_flush"] == ["class", "init", "appended"]
    assert AppUnitOfWork(session_factory).participants == []


async def test_rows_written_after_the_flush_commit_with_the_work(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """An after_flush participant sees the flushed work and its rows commit in the same transaction."""
    uow = AppUnitOfWork(session_factory, participants=[WritesAnAccount()])
    async with uow:
        uow.products.add(Product(sku="LAMP", stock=7))
        await uow.commit()
    async with AppUnitOfWork(session_factory) as check:
        assert (await check.accounts.get("stock-7")).balance == 7


async def test_an_after_flush_error_rolls_the_work_back(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """A participant failing before the commit fails commit(): nothing is written, no event is released."""
    uow = AppUnitOfWork(session_factory, participants=[WritesAnAccount(), Fails("after_flush")])
    async with uow:
        product = Product(sku="LAMP", stock=7)
        uow.products.add(product)
        product.allocate(1)
        with pytest.raises(RuntimeError, match="before the commit"):
            await uow.commit()
    assert not uow.committed
    assert list(uow.collect_new_events()) == []
    async with AppUnitOfWork(session_factory) as check:
        assert await check.products.get_or_none("LAMP") is None
        assert await check.accounts.count() == 0


async def test_an_after_commit_error_propagates_but_the_work_stays_committed(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """A participant failing after the commit is not hidden, and `committed` tells the bus not to repeat the work."""
    uow = AppUnitOfWork(session_factory, participants=[Fails("after_commit")])
    async with uow:
        uow.products.add(Product(sku="LAMP", stock=7))
        with pytest.raises(RuntimeError, match="after the commit"):
            await uow.commit()
    assert uow.committed
    async with AppUnitOfWork(session_factory) as check:
        assert (await check.products.get("LAMP")).stock == 7


async def test_an_after_flush_error_on_the_twin_commits_nothing() -> None:
    """On the twin too, a participant failing before the commit leaves the store untouched."""
    uow = TwinUnitOfWork(participants=[Fails("after_flush")])
    async with uow:
        uow.counters.add(Counter(id=1))
        with pytest.raises(RuntimeError):
            await uow.commit()
    async with uow:
        assert await uow.counters.count() == 0
    assert uow.commits == 0


async def test_the_deprecated_before_commit_override_still_runs(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """A subclass overriding `_before_commit` gets a DeprecationWarning and its hook still writes in the transaction."""
    with pytest.warns(DeprecationWarning, match="participant"):

        class Legacy(AppUnitOfWork):
            async def _before_commit(self, session: AsyncSession, events: list[DomainEvent]) -> None:
                await session.execute(insert(accounts).values(ref="legacy", balance=1, version=1))

    uow = Legacy(session_factory)
    async with uow:
        uow.counters.add(Counter(id=1))
        await uow.commit()
    async with AppUnitOfWork(session_factory) as check:
        assert (await check.accounts.get("legacy")).balance == 1


async def test_participants_without_an_after_flush_phase_still_commit_with_the_work(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """A before_flush-only participant adds its object to the same flush (no separate flush step is needed)."""

    class AddsACounter(Participant[SqlAlchemyUnitOfWork]):
        async def before_flush(self, uow: SqlAlchemyUnitOfWork, events: Sequence[DomainEvent]) -> None:
            uow.session.add(Counter(id=99, value=1))

    uow = AppUnitOfWork(session_factory, participants=[AddsACounter()])
    async with uow:
        uow.products.add(Product(sku="LAMP", stock=7))
        await uow.commit()
    async with AppUnitOfWork(session_factory) as check:
        assert (await check.counters.get(99)).value == 1
        assert (await check.products.get("LAMP")).stock == 7
