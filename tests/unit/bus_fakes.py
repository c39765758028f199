"""Messages, an aggregate and keel's in-memory unit of work for the message-bus unit tests."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from keel import AggregateRoot, Command, DomainEvent
from keel.orm import Base, VersionMixin
from keel.testing import InMemoryRepository, InMemoryStore, InMemoryUnitOfWork


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


class Item(Base, AggregateRoot, VersionMixin):
    __tablename__ = "bus_items"
    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int]

    def bump(self, by: int) -> None:
        self.value += by
        self.record(Bumped(key=self.key, value=self.value))


class FakeUnitOfWork(InMemoryUnitOfWork):
    items: InMemoryRepository[Item]


async def seeded(*keys: str) -> InMemoryStore:
    """A store holding an Item of value 0 per key."""
    store = InMemoryStore()
    async with FakeUnitOfWork(store) as uow:
        uow.items.add_many(Item(key=key, value=0) for key in keys)
        await uow.commit()
    return store


async def value_of(store: InMemoryStore, key: str) -> int:
    """The committed value of an item."""
    async with FakeUnitOfWork(store) as uow:
        return (await uow.items.get(key)).value
