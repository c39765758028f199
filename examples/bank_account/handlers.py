"""The bank's unit of work, its event-sourced repository and the command handlers on keel's bus."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from examples.bank_account.domain import Account, Deposit, OpenAccount, Withdraw
from keel import MessageBus, SqlAlchemyUnitOfWork
from keel.event_store import EventSourcedRepository


class Accounts(EventSourcedRepository[Account]):
    aggregate_type = Account
    #: A snapshot every 50 events: loading a busy account reads its snapshot and at most 49 events.
    snapshot_every = 50


class BankUnitOfWork(SqlAlchemyUnitOfWork):
    accounts: Accounts


async def open_account(cmd: OpenAccount, uow: BankUnitOfWork) -> None:
    async with uow:
        uow.accounts.add(Account.open(cmd.account_id, cmd.owner, cmd.overdraft_limit))
        await uow.commit()


async def deposit(cmd: Deposit, uow: BankUnitOfWork) -> int:
    async with uow:
        account = await uow.accounts.get(cmd.account_id)
        account.deposit(cmd.amount)
        await uow.commit()
        return account.balance


async def withdraw(cmd: Withdraw, uow: BankUnitOfWork) -> int:
    async with uow:
        account = await uow.accounts.get(cmd.account_id)
        account.withdraw(cmd.amount)
        await uow.commit()
        return account.balance


COMMAND_HANDLERS: dict[type[Any], Callable[..., Any]] = {
    OpenAccount: open_account,
    Deposit: deposit,
    Withdraw: withdraw,
}


def build_bus(uow_factory: Callable[[], BankUnitOfWork]) -> MessageBus:
    """The bank's bus (ConcurrencyError on a stale account is retried by the bus)."""
    return MessageBus(uow_factory, command_handlers=COMMAND_HANDLERS, audit=False)
