"""The bank example on SQLite and PostgreSQL: commands on the bus, snapshots, the balance projection."""

from __future__ import annotations

import asyncio

import pytest
from examples.bank_account.domain import Deposit, OpenAccount, OverdraftExceeded, Withdraw
from examples.bank_account.orm import balances
from examples.bank_account.projection import BalanceProjection
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel import MessageBus
from keel.event_store import ProjectionRunner, SqlAlchemyEventStore

Factory = async_sessionmaker[AsyncSession]


async def balance_rows(session_factory: Factory) -> dict[str, tuple[int, int]]:
    async with session_factory() as session:
        rows = (await session.execute(select(balances.c.account_id, balances.c.balance, balances.c.movements))).all()
    return {str(a): (int(b), int(m)) for a, b, m in rows}


async def test_commands_move_money_and_the_projection_shows_the_balances(
    bank_bus: MessageBus, session_factory: Factory
) -> None:
    """Open, deposit and withdraw through the bus; the overdraft rule refuses; the projection agrees."""
    await bank_bus.handle(OpenAccount(account_id="ada", owner="Ada", overdraft_limit=50))
    await bank_bus.handle(OpenAccount(account_id="bob", owner="Bob"))
    assert await bank_bus.handle(Deposit(account_id="ada", amount=100)) == 100
    assert await bank_bus.handle(Withdraw(account_id="ada", amount=140)) == -40
    with pytest.raises(OverdraftExceeded):
        await bank_bus.handle(Withdraw(account_id="ada", amount=11))
    with pytest.raises(OverdraftExceeded):
        await bank_bus.handle(Withdraw(account_id="bob", amount=1))
    runner = ProjectionRunner(session_factory, [BalanceProjection()], batch_size=2)
    await runner.catch_up("bank.balances")
    assert await balance_rows(session_factory) == {"ada": (-40, 2), "bob": (0, 0)}


async def test_a_busy_account_is_snapshotted_every_50_events(bank_bus: MessageBus, session_factory: Factory) -> None:
    """120 events on one account leave a snapshot at version 100; concurrent deposits are retried, none lost."""
    await bank_bus.handle(OpenAccount(account_id="busy", owner="Busy"))
    for _ in range(114):
        await bank_bus.handle(Deposit(account_id="busy", amount=1))
    await asyncio.gather(*(bank_bus.handle(Deposit(account_id="busy", amount=1)) for _ in range(4)))
    store = SqlAlchemyEventStore(session_factory)
    assert await store.stream_version("account-busy") == 119
    snapshot = await store.load_snapshot("account-busy")
    assert snapshot is not None
    assert snapshot.version == 100
    runner = ProjectionRunner(session_factory, [BalanceProjection()])
    await runner.replay("bank.balances")
    assert await balance_rows(session_factory) == {"busy": (118, 118)}
