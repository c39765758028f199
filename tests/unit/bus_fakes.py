"""A tiny in-memory unit of work and aggregate for the message-bus unit tests."""

from __future__ import annotations

from keel import AggregateRoot, Command, DomainEvent
from keel.domain.messages import Message
from keel.service_layer.unit_of_work import AbstractUnitOfWork


class Bump(Command):
    key: str
    by: int = 1


class Fail(Command):
    reason: str = "boom"


class Bumped(DomainEvent):
    key: str
    value: int


class Noticed(DomainEvent):
    what: str


class Item(AggregateRoot):
    def __init__(self, key: str, value: int = 0) -> None:
        self.key = key
        self.value = value

    def bump(self, by: int) -> None:
        self.value += by
        self.record(Bumped(key=self.key, value=self.value))


class Store:
    """What the fake "database" holds, shared by every unit of work of a test."""

    def __init__(self) -> None:
        self.items: dict[str, Item] = {}
        self.commits = 0


class FakeUnitOfWork(AbstractUnitOfWork):
    """Commits into a :class:`Store`; every instance is counted so tests can see freshness."""

    instances: list[FakeUnitOfWork] = []

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self._staged: dict[str, Item] = {}
        FakeUnitOfWork.instances.append(self)

    def add(self, item: Item) -> None:
        self._require_open("add")
        self._staged[item.key] = item
        self.mark_seen(item)

    def get(self, key: str) -> Item:
        self._require_open("get")
        item = self._staged.get(key) or self.store.items[key]
        self._staged[key] = item
        self.mark_seen(item)
        return item

    async def _begin(self) -> None:
        self._staged = {}

    async def _commit(self, events: list[DomainEvent]) -> None:
        self.store.items.update(self._staged)
        self.store.commits += 1

    async def _rollback(self) -> None:
        self._staged = {}

    async def _close(self) -> None:
        self._staged = {}


def names(messages: list[Message]) -> list[str]:
    return [type(m).__name__ for m in messages]
