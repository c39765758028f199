"""Messages, an aggregate and a plain fake unit of work for the message-bus unit tests.

The bus only needs the AbstractUnitOfWork contract (open, commit, roll back, hand
out events of committed work), so these tests run on a dozen lines of fake with
no ORM mapping and no twin: a change in the SQL or in-memory units of work cannot
break a bus test, and the bus tests add no table to ``Base.metadata``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from keel import AggregateRoot, Command, DomainEvent, NotFoundError
from keel.service_layer import AbstractUnitOfWork


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


@dataclass(eq=False)
class Item(AggregateRoot):
    key: str
    value: int

    def bump(self, by: int) -> None:
        self.value += by
        self.record(Bumped(key=self.key, value=self.value))


@dataclass
class FakeStore:
    """The committed state: each item's value by key, and how many commits made it."""

    values: dict[str, int] = field(default_factory=dict)
    commits: int = 0


class FakeItems:
    """A repository of items over one unit of work: loads copies, tracks them for the commit."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow
        self.loaded: dict[str, Item] = {}

    def add(self, item: Item) -> Item:
        self._uow.mark_seen(item)
        self.loaded[item.key] = item
        return item

    def add_many(self, items: Iterable[Item]) -> None:
        for item in items:
            self.add(item)

    async def get(self, key: str) -> Item:
        if key in self.loaded:
            return self.loaded[key]
        if key not in self._uow.store.values:
            raise NotFoundError(entity="Item", id=key)
        return self.add(Item(key=key, value=self._uow.store.values[key]))


class FakeUnitOfWork(AbstractUnitOfWork):
    """Commits copy the loaded items' values into the store; anything else leaves the store as it was."""

    items: FakeItems

    def __init__(self, store: FakeStore | None = None) -> None:
        super().__init__()
        self.store = store if store is not None else FakeStore()

    async def _begin(self) -> None:
        self.items = FakeItems(self)

    async def _commit(self, events: list[DomainEvent]) -> None:
        self.store.values.update({key: item.value for key, item in self.items.loaded.items()})
        self.store.commits += 1

    async def _rollback(self) -> None:
        self.items = FakeItems(self)

    async def _close(self) -> None:
        self.items = FakeItems(self)


async def seeded(*keys: str) -> FakeStore:
    """A store holding an Item of value 0 per key."""
    store = FakeStore()
    async with FakeUnitOfWork(store) as uow:
        uow.items.add_many(Item(key=key, value=0) for key in keys)
        await uow.commit()
    return store


async def value_of(store: FakeStore, key: str) -> int:
    """The committed value of an item."""
    async with FakeUnitOfWork(store) as uow:
        return (await uow.items.get(key)).value
