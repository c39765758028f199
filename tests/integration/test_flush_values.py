"""Entities whose values their columns cannot hold fail the flush alike on SQLite and PostgreSQL (issue 7 item 10)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel import ValidationError
from keel.testing import in_memory_unit_of_work
from tests.contract.gauges import Gauge, GaugeUnitOfWork
from tests.support.seeding import seed


@pytest.mark.parametrize(
    ("field", "value"),
    [("qty", 2**31), ("qty", 2**63), ("small", -(2**15) - 1), ("price", Decimal("1e6")), ("code", "sixsix")],
)
async def test_committing_a_value_the_column_cannot_hold_is_a_validation_error_naming_the_column(
    session_factory: async_sessionmaker[AsyncSession], field: str, value: Any
) -> None:
    """SQLite would store 2**31 in an Integer and overflow at 2**63; PostgreSQL refuses both: now neither sends it."""
    async with GaugeUnitOfWork(session_factory) as uow:
        uow.gauges.add(Gauge(id=1, **{field: value}))
        with pytest.raises(ValidationError) as caught:
            await uow.commit()
    assert caught.value.details["field"] == field
    assert caught.value.details["entity"] == "Gauge"
    assert caught.value.errors[0]["loc"] == ["Gauge", field]
    async with GaugeUnitOfWork(session_factory) as uow:
        assert await uow.gauges.count() == 0


async def test_changing_a_loaded_entity_to_an_unstorable_value_fails_before_sql_and_leaves_the_session_usable(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Only changed columns are checked; after the refusal the unit of work can fix the value and commit."""
    await seed(GaugeUnitOfWork(session_factory), gauges=[Gauge(id=1, qty=1)])
    async with GaugeUnitOfWork(session_factory) as uow:
        gauge = await uow.gauges.get(1)
        gauge.qty = 2**31
        with pytest.raises(ValidationError):
            await uow.gauges.list()  # the autoflush before the query
        gauge.qty = 2**31 - 1
        await uow.commit()
    async with GaugeUnitOfWork(session_factory) as uow:
        assert (await uow.gauges.get(1)).qty == 2**31 - 1


@pytest.mark.parametrize(("field", "value"), [("qty", 2**31), ("price", Decimal("1e6")), ("code", "sixsix")])
async def test_the_twin_refuses_the_same_values_at_its_flush(field: str, value: Any) -> None:
    """The in-memory unit of work checks values as the SQL flush does: a ValidationError naming the column."""
    twin = in_memory_unit_of_work(GaugeUnitOfWork)()
    async with twin:
        twin.gauges.add(Gauge(id=1, qty=1))
        await twin.commit()
    async with twin:
        twin.gauges.add(Gauge(id=2, **{field: value}))
        with pytest.raises(ValidationError) as caught:
            await twin.commit()
        assert caught.value.details["field"] == field
    async with twin:
        gauge = await twin.gauges.get(1)
        setattr(gauge, field, value)
        with pytest.raises(ValidationError):
            await twin.gauges.list()  # the autoflush before the query
        await twin.rollback()
        assert await twin.gauges.count() == 1
