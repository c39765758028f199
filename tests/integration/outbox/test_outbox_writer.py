"""The outbox writer: routed events become rows in the business transaction, and only then."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel import ConfigurationError, DomainEvent
from keel.outbox import OutboxRouting, OutboxWriter, Route
from keel.security import Principal, as_principal
from keel.service_layer.context import message_context
from tests.integration.outbox.conftest import allocate, outbox_rows, seed
from tests.models import AppUnitOfWork, Product


class Renamed(DomainEvent):
    """An event no route names."""

    sku: str


async def test_a_routed_event_is_written_with_its_attributes(
    uow_factory: Callable[[], AppUnitOfWork], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """The row carries topic, ordering key, the event's JSON, and the attributes the design names."""
    await seed(uow_factory, "LAMP")
    alice = Principal(id="alice", roles=frozenset({"clerk"}))
    with message_context(correlation_id="corr-1", causation_id="cmd-9"), as_principal(alice):
        async with uow_factory() as uow:
            product = await uow.products.get("LAMP")
            product.allocate(3)
            await uow.commit()
    [row] = await outbox_rows(session_factory)
    assert row["topic"] == "allocations"
    assert row["ordering_key"] == "LAMP"
    assert row["status"] == "pending"
    assert row["attempts"] == 0
    body = json.loads(str(row["payload"]))
    assert body["sku"] == "LAMP"
    assert body["qty"] == 3
    attributes = row["attributes"]
    assert isinstance(attributes, dict)
    assert attributes["event_type"] == "Allocated"
    assert attributes["event_id"] == row["id"] == body["event_id"]
    assert attributes["schema_version"] == "1"
    assert attributes["correlation_id"] == "corr-1"
    assert attributes["causation_id"] == "cmd-9"
    assert Principal.model_validate_json(attributes["principal"]) == alice


async def test_a_rolled_back_unit_of_work_writes_nothing(
    uow_factory: Callable[[], AppUnitOfWork], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Events of work that is not committed never reach the outbox, nor do those of a failed commit."""
    await seed(uow_factory, "LAMP")
    async with uow_factory() as uow:
        product = await uow.products.get("LAMP")
        product.allocate(1)
    with pytest.raises(RuntimeError):
        async with uow_factory() as uow:
            product = await uow.products.get("LAMP")
            product.allocate(1)
            raise RuntimeError("the handler failed")
    assert await outbox_rows(session_factory) == []


async def test_a_failed_commit_leaves_no_row(
    uow_factory: Callable[[], AppUnitOfWork], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """A commit that loses an optimistic-locking race rolls back its outbox rows with its changes."""
    from keel import ConcurrencyError

    await seed(uow_factory, "LAMP")
    first, second = uow_factory(), uow_factory()
    async with first, second:
        (await first.products.get("LAMP")).allocate(1)
        (await second.products.get("LAMP")).allocate(2)
        await first.commit()
        with pytest.raises(ConcurrencyError):
            await second.commit()
    rows = await outbox_rows(session_factory)
    assert [json.loads(str(row["payload"]))["qty"] for row in rows] == [1]


async def test_unrouted_events_stay_inside(
    session_factory: async_sessionmaker[AsyncSession], uow_factory: Callable[[], AppUnitOfWork]
) -> None:
    """An event type without a route writes no row; routed ones of the same commit do, in order."""
    await seed(uow_factory, "LAMP")
    writer = OutboxWriter(OutboxRouting({"Allocated": Route("a", payload=lambda e: {"q": e.qty})}))
    async with AppUnitOfWork(session_factory, participants=[writer]) as uow:
        product = await uow.products.get("LAMP")
        product.record(Renamed(sku="LAMP"))
        product.allocate(1)
        product.allocate(2)
        await uow.commit()
    rows = await outbox_rows(session_factory)
    assert [row["payload"] for row in rows] == ['{"q":1}', '{"q":2}']
    assert all(row["ordering_key"] is None for row in rows)


async def test_a_database_without_the_table_is_a_configuration_error(tmp_path: object) -> None:
    """Without keel's migrations the writer says to run them, instead of a driver error."""
    from keel.config import DatabaseSettings
    from keel.infrastructure.database import create_engine, create_session_factory
    from keel.orm import Base

    engine = create_engine(DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/bare.db"))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    factory = create_session_factory(engine)
    writer = OutboxWriter(OutboxRouting({"Allocated": "a"}))
    try:
        async with AppUnitOfWork(factory, participants=[writer]) as uow:
            uow.products.add(Product(sku="X", stock=5))
            await uow.commit()
        with pytest.raises(ConfigurationError, match="keel_outbox"):
            await allocate(lambda: AppUnitOfWork(factory, participants=[writer]), "X")
    finally:
        await engine.dispose()


@pytest.mark.slow
async def test_a_commit_with_thousands_of_events_writes_them_all_in_order(
    uow_factory: Callable[[], AppUnitOfWork], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """2,500 routed events in one commit (more than one INSERT's worth of parameters) all land, in order."""
    await seed(uow_factory, "LAMP")
    await allocate(uow_factory, "LAMP", times=2500)
    rows = await outbox_rows(session_factory)
    assert len(rows) == 2500
    assert [json.loads(str(row["payload"]))["qty"] for row in rows] == [1] * 2500
    created: list[Any] = [row["created_at"] for row in rows]
    assert created == sorted(created)
