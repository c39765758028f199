"""Events and an event-sourced aggregate shared by the event store's tests."""

from __future__ import annotations

from typing import ClassVar

from keel import DomainEvent


class Opened(DomainEvent):
    message_type: ClassVar[str] = "es_test.Opened"
    owner: str


class Deposited(DomainEvent):
    message_type: ClassVar[str] = "es_test.Deposited"
    amount: int


class Withdrawn(DomainEvent):
    message_type: ClassVar[str] = "es_test.Withdrawn"
    amount: int
