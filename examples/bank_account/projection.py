"""The balance projection: ``bank_balances`` kept up to date from the account events.

Run it with ``keel events run`` and
``KEEL_EVENT_STORE__PROJECTIONS=examples.bank_account.projection:PROJECTIONS``;
rebuild it with ``keel events replay bank.balances``.
"""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy import delete, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from examples.bank_account.domain import Account, AccountOpened, MoneyDeposited, MoneyWithdrawn
from examples.bank_account.orm import balances
from keel import DomainEvent
from keel.event_store import Projection, RecordedEvent


class BalanceProjection(Projection):
    """One row per account: owner, balance, number of movements."""

    name: ClassVar[str] = "bank.balances"
    types: ClassVar[tuple[type[DomainEvent] | str, ...] | None] = (AccountOpened, MoneyDeposited, MoneyWithdrawn)

    async def handle(self, record: RecordedEvent, session: AsyncSession) -> None:
        account_id = record.stream_id.removeprefix(f"{Account.stream_prefix}-")
        match record.event:
            case AccountOpened(owner=owner):
                await session.execute(
                    insert(balances).values(
                        account_id=account_id, owner=owner, balance=0, movements=0, position=record.position
                    )
                )
            case MoneyDeposited(amount=amount) | MoneyWithdrawn(amount=amount):
                change = amount if isinstance(record.event, MoneyDeposited) else -amount
                await session.execute(
                    update(balances)
                    .where(balances.c.account_id == account_id)
                    .values(
                        balance=balances.c.balance + change,
                        movements=balances.c.movements + 1,
                        position=record.position,
                    )
                )

    async def reset(self, session: AsyncSession) -> None:
        await session.execute(delete(balances))


PROJECTIONS = [BalanceProjection()]
