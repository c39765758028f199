"""A read-only unit of work refuses every write before it reaches the database, on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keel import UnitOfWorkError
from keel.container import build_unit_of_work
from keel.testing import in_memory_unit_of_work
from tests.contract.models import ContractUnitOfWork, Item
from tests.support.seeding import seed


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every SQL statement the engine sends, upper-cased."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement.upper())

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield sent
    event.remove(engine.sync_engine, "before_cursor_execute", record)


def writes(sent: list[str]) -> list[str]:
    return [s for s in sent if s.lstrip().startswith(("INSERT", "UPDATE", "DELETE"))]


async def test_reads_work_in_a_read_only_unit_of_work(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """Repositories read as usual; leaving rolls back quietly."""
    [item] = await seed(ContractUnitOfWork(session_factory), items=[Item(name="lamp")])
    async with ContractUnitOfWork(session_factory, read_only=True) as uow:
        assert (await uow.items.get(item.id)).name == "lamp"
        assert await uow.items.count() == 1


async def test_every_kind_of_write_is_refused_before_any_sql(
    session_factory: async_sessionmaker[AsyncSession], statements: list[str]
) -> None:
    """add, a flushed change, delete, set-based writes and commit raise UnitOfWorkError; no write is sent."""
    [item] = await seed(ContractUnitOfWork(session_factory), items=[Item(name="lamp")])
    statements.clear()
    uow = ContractUnitOfWork(session_factory, read_only=True)
    async with uow:
        with pytest.raises(UnitOfWorkError, match="read-only"):
            uow.items.add(Item(name="desk"))
        with pytest.raises(UnitOfWorkError, match="read-only"):
            await uow.items.update_many(values={"name": "x"}, name="lamp")
        with pytest.raises(UnitOfWorkError, match="read-only"):
            await uow.items.delete_many(name="lamp")
        with pytest.raises(UnitOfWorkError, match="read-only"):
            await uow.commit()
    async with uow:
        loaded = await uow.items.get(item.id)
        loaded.name = "changed"
        with pytest.raises(UnitOfWorkError, match="read-only"):
            await uow.session.flush()
    async with uow:
        uow.session.sync_session.delete(await uow.items.get(item.id))
        with pytest.raises(UnitOfWorkError, match="read-only"):
            await uow.items.count()  # autoflush
    assert writes(statements) == []
    async with ContractUnitOfWork(session_factory) as check:
        assert (await check.items.get(item.id)).name == "lamp"


async def test_the_error_names_its_reason(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """The refusal carries reason=read_only, so callers can tell it from other misuse."""
    async with ContractUnitOfWork(session_factory, read_only=True) as uow:
        with pytest.raises(UnitOfWorkError) as caught:
            await uow.commit()
    assert caught.value.details == {"reason": "read_only"}


async def test_a_write_uow_is_unchanged_by_the_flag_being_off(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """read_only defaults to False; the container's builder passes it only when asked."""
    uow = build_unit_of_work(ContractUnitOfWork, session_factory)
    assert uow.read_only is False
    assert build_unit_of_work(ContractUnitOfWork, session_factory, read_only=True).read_only is True


@pytest.mark.postgres
@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_hand_written_sql_writes_are_refused_by_postgresql(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """On PostgreSQL the transaction itself is READ ONLY, so even a text() UPDATE cannot write."""
    [item] = await seed(ContractUnitOfWork(session_factory), items=[Item(name="lamp")])
    async with ContractUnitOfWork(session_factory, read_only=True) as uow:
        assert await uow.session.scalar(text("SHOW transaction_read_only")) == "on"
        with pytest.raises(Exception, match="read-only transaction"):
            await uow.session.execute(text("UPDATE repo_items SET name = 'x'"))
    async with ContractUnitOfWork(session_factory) as check:
        assert (await check.items.get(item.id)).name == "lamp"
        assert await check.session.scalar(text("SHOW transaction_read_only")) == "off"


async def test_a_hand_built_factory_reads_on_the_primary_and_still_refuses_writes(engine: AsyncEngine) -> None:
    """A factory without replicas (built by hand) runs read-only units of work on its own bind."""
    factory = async_sessionmaker(engine)
    [item] = await seed(ContractUnitOfWork(factory), items=[Item(name="lamp")])
    async with ContractUnitOfWork(factory, read_only=True) as uow:
        assert (await uow.items.get(item.id)).name == "lamp"
        with pytest.raises(UnitOfWorkError, match="read-only"):
            uow.items.add(Item(name="desk"))


async def test_the_in_memory_twin_refuses_commit_when_read_only() -> None:
    """InMemoryUnitOfWork takes read_only too, so a container whose unit of work is the twin keeps working."""
    uow = in_memory_unit_of_work(ContractUnitOfWork)(read_only=True)
    async with uow:
        with pytest.raises(UnitOfWorkError, match="read-only"):
            await uow.commit()
