"""An aggregate mapped on its own base, on keel's in-memory twin: for unit tests of the twin's bus features.

The bus itself is tested on the plain fake of ``bus_fakes``; what only the twin
does (participants such as ``InMemoryProcessedCommands``, stale-version
conflicts) is tested here, on the same messages. The item's base has its own
``MetaData``, so it adds no table to ``keel.orm.Base``'s.
"""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from keel import AggregateRoot
from keel.orm import KeelBase, VersionMixin
from keel.testing import InMemoryRepository, InMemoryStore, InMemoryUnitOfWork
from tests.unit.bus_fakes import Bumped


class TwinBase(KeelBase):
    """The twin fakes' own declarative base and metadata."""


class Item(TwinBase, AggregateRoot, VersionMixin):
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
