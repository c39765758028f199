"""Events and an event-sourced aggregate shared by the event store's tests."""

from __future__ import annotations

from typing import ClassVar

from keel import DomainError, DomainEvent
from keel.event_store import EventSourcedAggregate


class Opened(DomainEvent):
    message_type: ClassVar[str] = "es_test.Opened"
    owner: str


class Deposited(DomainEvent):
    message_type: ClassVar[str] = "es_test.Deposited"
    amount: int


class Withdrawn(DomainEvent):
    message_type: ClassVar[str] = "es_test.Withdrawn"
    amount: int


class Account(EventSourcedAggregate):
    """A bank account: opened, deposits, withdrawals that may not overdraw it."""

    stream_prefix: ClassVar[str] = "account"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.owner: str | None = None
        self.balance = 0
        self.movements = 0

    @classmethod
    def open(cls, id: str, owner: str) -> Account:
        account = cls(id)
        account.record(Opened(owner=owner))
        return account

    def deposit(self, amount: int) -> None:
        self.record(Deposited(amount=amount))

    def withdraw(self, amount: int) -> None:
        if amount > self.balance:
            raise DomainError(f"account {self.id} cannot go below zero")
        self.record(Withdrawn(amount=amount))

    def apply(self, event: DomainEvent) -> None:
        match event:
            case Opened(owner=owner):
                self.owner = owner
            case Deposited(amount=amount):
                self.balance += amount
                self.movements += 1
            case Withdrawn(amount=amount):
                self.balance -= amount
                self.movements += 1
