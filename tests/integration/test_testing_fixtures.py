"""The pytest fixtures keel ships for applications."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel.infrastructure.repository.cursor import default_cursor_secret
from keel.testing import InMemoryStore, in_memory_unit_of_work

# Imported fixtures are visible to this module, as `pytest_plugins = ["keel.testing.fixtures"]`
# in a top-level conftest.py makes them visible to a whole suite.
from keel.testing.fixtures import keel_cursor_secret, keel_session_factory, keel_store  # noqa: F401
from tests.contract.models import ContractUnitOfWork, Item

FakeUnitOfWork = in_memory_unit_of_work(ContractUnitOfWork)


async def test_keel_store_is_shared_by_the_units_of_work_given_it(keel_store: InMemoryStore) -> None:  # noqa: F811
    """Two units of work over the fixture's store see each other's commits."""
    async with FakeUnitOfWork(keel_store) as uow:
        uow.items.add(Item(name="a"))
        await uow.commit()
    async with FakeUnitOfWork(keel_store) as uow:
        assert await uow.items.count() == 1


async def test_keel_session_factory_has_every_table(
    keel_session_factory: async_sessionmaker[AsyncSession],  # noqa: F811
) -> None:
    """The SQLite factory is ready for a real unit of work."""
    async with ContractUnitOfWork(keel_session_factory) as uow:
        uow.items.add(Item(name="a"))
        await uow.commit()
    async with ContractUnitOfWork(keel_session_factory) as uow:
        assert [i.name for i in await uow.items.list()] == ["a"]


def test_keel_cursor_secret_sets_a_random_secret(keel_cursor_secret: str) -> None:  # noqa: F811
    """The fixture's secret is the one cursors are signed with during the test."""
    assert default_cursor_secret() == keel_cursor_secret.encode()
