"""The bank account's domain: events, commands, the overdraft rule and the event-sourced aggregate.

No SQLAlchemy here: the account's state is only the fold of its events.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from keel import Command, DomainError, DomainEvent
from keel.event_store import EventSourcedAggregate


class AccountOpened(DomainEvent):
    message_type: ClassVar[str] = "bank.AccountOpened"
    owner: str
    overdraft_limit: int


class MoneyDeposited(DomainEvent):
    message_type: ClassVar[str] = "bank.MoneyDeposited"
    amount: int


class MoneyWithdrawn(DomainEvent):
    message_type: ClassVar[str] = "bank.MoneyWithdrawn"
    amount: int


class OpenAccount(Command):
    account_id: str = Field(min_length=1, max_length=100)
    owner: str = Field(min_length=1, max_length=200)
    overdraft_limit: int = Field(0, ge=0)


class Deposit(Command):
    account_id: str
    amount: int = Field(gt=0)


class Withdraw(Command):
    account_id: str
    amount: int = Field(gt=0)


class OverdraftExceeded(DomainError):
    """The withdrawal would take the balance below the account's overdraft limit."""

    code = "overdraft_exceeded"


class Account(EventSourcedAggregate):
    """A bank account: its balance may go below zero down to ``-overdraft_limit``, never further."""

    stream_prefix: ClassVar[str] = "account"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.owner = ""
        self.overdraft_limit = 0
        self.balance = 0

    @classmethod
    def open(cls, id: str, owner: str, overdraft_limit: int = 0) -> Account:
        account = cls(id)
        account.record(AccountOpened(owner=owner, overdraft_limit=overdraft_limit))
        return account

    def deposit(self, amount: int) -> None:
        self.record(MoneyDeposited(amount=amount))

    def withdraw(self, amount: int) -> None:
        if self.balance - amount < -self.overdraft_limit:
            raise OverdraftExceeded(
                f"withdrawing {amount} from {self.id} would exceed its overdraft limit of {self.overdraft_limit}",
                account_id=self.id,
                balance=self.balance,
                amount=amount,
            )
        self.record(MoneyWithdrawn(amount=amount))

    def apply(self, event: DomainEvent) -> None:
        match event:
            case AccountOpened(owner=owner, overdraft_limit=limit):
                self.owner, self.overdraft_limit = owner, limit
            case MoneyDeposited(amount=amount):
                self.balance += amount
            case MoneyWithdrawn(amount=amount):
                self.balance -= amount
