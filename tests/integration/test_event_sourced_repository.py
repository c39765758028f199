"""Event-sourced aggregates through a unit of work: load, commit, conflicts, snapshots, released events."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel import (
    Command,
    ConcurrencyError,
    ConflictError,
    MessageBus,
    NotFoundError,
    SqlAlchemyRepository,
    SqlAlchemyUnitOfWork,
)
from keel.event_store import EventSourcedRepository, SqlAlchemyEventStore
from keel.service_layer import RetryPolicy
from tests.contract.event_store_models import Account, Deposited, Opened
from tests.models import Counter

Factory = async_sessionmaker[AsyncSession]


class SnapshottingAccounts(EventSourcedRepository[Account]):
    aggregate_type = Account
    snapshot_every = 3


class BankUnitOfWork(SqlAlchemyUnitOfWork):
    accounts: EventSourcedRepository[Account]
    snapshotted: SnapshottingAccounts
    events: SqlAlchemyEventStore


async def open_account(session_factory: Factory, id: str = "a-1") -> None:
    async with BankUnitOfWork(session_factory) as uow:
        uow.accounts.add(Account.open(id, "ada"))
        await uow.commit()


async def test_an_aggregate_is_stored_as_events_and_rebuilt_from_them(session_factory: Factory) -> None:
    """Commit appends the pending events; get replays them into an equal aggregate."""
    async with BankUnitOfWork(session_factory) as uow:
        account = Account.open("a-1", "ada")
        account.deposit(10)
        uow.accounts.add(account)
        await uow.commit()
        assert account.stored_version == 2
        account.withdraw(4)
        await uow.commit()
    async with BankUnitOfWork(session_factory) as uow:
        loaded = await uow.accounts.get("a-1")
    assert (loaded.owner, loaded.balance, loaded.version, loaded.stored_version) == ("ada", 6, 3, 3)
    recorded = await SqlAlchemyEventStore(session_factory).read_stream("account-a-1")
    assert [type(r.event).__name__ for r in recorded] == ["Opened", "Deposited", "Withdrawn"]


async def test_an_empty_stream_is_not_found(session_factory: Factory) -> None:
    """get raises NotFoundError for an aggregate without events; get_or_none returns None."""
    async with BankUnitOfWork(session_factory) as uow:
        assert await uow.accounts.get_or_none("nobody") is None
        with pytest.raises(NotFoundError):
            await uow.accounts.get("nobody")


async def test_concurrent_changes_to_one_aggregate_conflict(session_factory: Factory) -> None:
    """Two units of work loaded at the same version: the second commit is a ConcurrencyError and writes nothing."""
    await open_account(session_factory)
    async with BankUnitOfWork(session_factory) as first, BankUnitOfWork(session_factory) as second:
        (await first.accounts.get("a-1")).deposit(5)
        (await second.accounts.get("a-1")).deposit(7)
        await first.commit()
        with pytest.raises(ConcurrencyError):
            await second.commit()
        assert list(second.collect_new_events()) == []
    async with BankUnitOfWork(session_factory) as uow:
        assert (await uow.accounts.get("a-1")).balance == 5


async def test_opening_a_taken_stream_conflicts(session_factory: Factory) -> None:
    """Adding a new aggregate whose stream already has events is a ConcurrencyError."""
    await open_account(session_factory)
    with pytest.raises(ConcurrencyError):
        await open_account(session_factory)


async def test_committed_events_reach_collect_new_events_and_rolled_back_ones_do_not(
    session_factory: Factory,
) -> None:
    """Aggregate events and events appended through the unit of work's store are released on commit only."""
    uow = BankUnitOfWork(session_factory)
    async with uow:
        account = Account.open("a-2", "bob")
        uow.accounts.add(account)
        direct = Deposited(amount=1)
        await uow.events.append("ledger", [direct])
    assert list(uow.collect_new_events()) == []
    async with uow:
        account = Account.open("a-2", "bob")
        uow.accounts.add(account)
        await uow.events.append("ledger", [direct])
        await uow.commit()
    released = list(uow.collect_new_events())
    assert [type(e) for e in released].count(Opened) == 1
    assert direct in released
    assert len(released) == 2


async def test_snapshots_are_taken_every_n_events_and_used_to_load(session_factory: Factory) -> None:
    """snapshot_every = 3: a commit crossing a multiple of 3 snapshots; loading starts from it."""
    async with BankUnitOfWork(session_factory) as uow:
        account = Account.open("a-3", "cy")
        for amount in (1, 2, 3, 4, 5, 6):
            account.deposit(amount)
        uow.snapshotted.add(account)
        await uow.commit()
    store = SqlAlchemyEventStore(session_factory)
    snapshot = await store.load_snapshot("account-a-3")
    assert snapshot is not None
    assert (snapshot.version, snapshot.state["balance"]) == (7, 21)
    async with BankUnitOfWork(session_factory) as uow:
        loaded = await uow.snapshotted.get("a-3")
        loaded.withdraw(1)
        await uow.commit()
    async with BankUnitOfWork(session_factory) as uow:
        replayed = await uow.accounts.get("a-3")
        from_snapshot = await uow.snapshotted.get("a-3")
    assert replayed.snapshot_state() == from_snapshot.snapshot_state()
    assert (from_snapshot.balance, from_snapshot.version) == (20, 8)


async def test_a_snapshot_of_another_schema_version_is_ignored(session_factory: Factory) -> None:
    """Snapshots are a cache: one with a different schema version is skipped and the stream replayed."""
    await open_account(session_factory, "a-4")
    store = SqlAlchemyEventStore(session_factory)
    await store.save_snapshot("account-a-4", 1, {"balance": 999}, schema_version=99)
    async with BankUnitOfWork(session_factory) as uow:
        assert (await uow.snapshotted.get("a-4")).balance == 0


async def test_standalone_save_appends_without_a_unit_of_work(session_factory: Factory) -> None:
    """A repository over a standalone store saves an aggregate's pending events itself."""
    repository = EventSourcedRepository(SqlAlchemyEventStore(session_factory), Account)
    account = Account.open("a-5", "dee")
    await repository.save(account)
    account.deposit(3)
    await repository.save(account)
    loaded = await repository.load("a-5")
    assert loaded is not None
    assert (loaded.balance, loaded.stored_version) == (3, 2)


class Deposit(Command):
    account_id: str
    amount: int


async def test_the_bus_retries_a_conflicting_append_on_a_fresh_load(session_factory: Factory) -> None:
    """Concurrent commands on one account: losers get ConcurrencyError, the bus retries them, every deposit lands."""
    await open_account(session_factory, "a-6")
    deposited: list[Deposited] = []

    async def deposit(cmd: Deposit, uow: BankUnitOfWork) -> None:
        async with uow:
            account = await uow.accounts.get(cmd.account_id)
            account.deposit(cmd.amount)
            await uow.commit()

    async def seen(event: Deposited) -> None:
        deposited.append(event)

    bus = MessageBus(
        lambda: BankUnitOfWork(session_factory),
        command_handlers={Deposit: deposit},
        event_handlers={Deposited: [seen]},
        command_retry=RetryPolicy(max_attempts=20, initial_backoff=0.001, max_backoff=0.01, jitter=0.005),
    )
    await asyncio.gather(*(bus.handle(Deposit(account_id="a-6", amount=n)) for n in range(1, 6)))
    async with BankUnitOfWork(session_factory) as uow:
        account = await uow.accounts.get("a-6")
    assert (account.balance, account.version) == (15, 6)
    assert sorted(e.amount for e in deposited) == [1, 2, 3, 4, 5]


class MixedUnitOfWork(SqlAlchemyUnitOfWork):
    accounts: EventSourcedRepository[Account]
    counters: SqlAlchemyRepository[Counter]


async def test_events_and_other_rows_commit_or_roll_back_together(session_factory: Factory) -> None:
    """An aggregate's events and a read-model row share the transaction: a failing flush keeps neither."""
    async with MixedUnitOfWork(session_factory) as uow:
        uow.accounts.add(Account.open("a-7", "fay"))
        uow.counters.add(Counter(id=1, value=1))
        await uow.commit()
    with pytest.raises(ConflictError):
        async with MixedUnitOfWork(session_factory) as uow:
            account = await uow.accounts.get("a-7")
            account.deposit(5)
            uow.counters.add(Counter(id=1, value=2))  # the same key: the flush fails after the append
            await uow.commit()
    store = SqlAlchemyEventStore(session_factory)
    assert await store.stream_version("account-a-7") == 1
    async with MixedUnitOfWork(session_factory) as uow:
        assert (await uow.counters.get(1)).value == 1
