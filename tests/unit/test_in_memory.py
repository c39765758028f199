"""What the in-memory twin adds for tests: shared stores, counters, copies, twins of SQL repositories."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func

from keel import ConfigurationError, SqlAlchemyRepository, UnitOfWorkError
from keel.testing import InMemoryRepository, InMemoryStore, InMemoryUnitOfWork, in_memory_unit_of_work
from tests.contract.models import ContractUnitOfWork, Item, ItemRepository, Renamed


class FakeUnitOfWork(InMemoryUnitOfWork):
    items: InMemoryRepository[Item]


class LowRank(SqlAlchemyRepository[Item]):
    async def low(self) -> list[Item]:
        """Written with select() and scalars(), as SQL-minded custom queries are."""
        return await self.scalars(self.select(Item.rank < 3).order_by(Item.rank.desc()).limit(2))


class TwinUnitOfWork(InMemoryUnitOfWork):
    items: LowRank


async def test_units_of_work_sharing_a_store_share_committed_data() -> None:
    """A bus's uow_factory can hand out fresh instances over one store."""
    store = InMemoryStore()
    first, second = FakeUnitOfWork(store), FakeUnitOfWork(store)
    async with first:
        first.items.add(Item(name="a"))
        await first.commit()
    async with second:
        assert [i.name for i in await second.items.list()] == ["a"]
    assert store.commits == 1
    assert [i.name for i in store.all(Item)] == ["a"]


async def test_an_instance_keeps_its_data_across_blocks_and_counts_commits() -> None:
    """Without a store argument each instance has its own, kept between `async with` blocks."""
    uow = FakeUnitOfWork()
    assert not uow.committed
    async with uow:
        uow.items.add(Item(name="a"))
        await uow.commit()
    async with uow:
        (await uow.items.list())[0].rename("b")
        await uow.rollback()
    async with uow:
        (await uow.items.list())[0].rename("c")
        await uow.commit()
    assert (uow.committed, uow.commits, uow.rollbacks) == (True, 2, 1)
    assert [(type(e), getattr(e, "name", None)) for e in uow.committed_events] == [(Renamed, "c")]
    assert FakeUnitOfWork().commits == 0


async def test_declared_repositories_exist_only_inside_the_block() -> None:
    """Using uow.items outside `async with` is a UnitOfWorkError, as with SQLAlchemy."""
    uow = FakeUnitOfWork()
    with pytest.raises(UnitOfWorkError):
        _ = uow.items
    with pytest.raises(AttributeError):
        _ = uow.nothing


async def test_entities_are_copies_owned_by_their_unit_of_work() -> None:
    """Changing an entity after its block ended, or one read from the store, changes nothing stored."""
    uow = FakeUnitOfWork()
    uow.store.add(Item(name="a"))
    async with uow:
        item = (await uow.items.list())[0]
    item.name = "changed outside"
    uow.store.all(Item)[0].name = "changed copy"
    async with uow:
        assert (await uow.items.list())[0].name == "a"


async def test_seeded_rows_get_keys_versions_and_timestamps() -> None:
    """store.add applies what an INSERT would: key, version 1, created_at/updated_at."""
    store = InMemoryStore()
    store.add(Item(name="a"), Item(name="b"))
    a, b = store.all(Item)
    assert (a.id, b.id, a.version) == (1, 2, 1)
    assert a.created_at is not None
    assert a.created_at.utcoffset().total_seconds() == 0


async def test_keys_are_never_reused_after_a_rollback() -> None:
    """Like a database sequence, a rolled-back insert still consumes its key."""
    uow = FakeUnitOfWork()
    async with uow:
        assert uow.items.add(Item(name="a")).id == 1
    async with uow:
        assert uow.items.add(Item(name="b")).id == 2


async def test_sql_repository_subclasses_become_twins_with_their_query_methods() -> None:
    """Annotating a SqlAlchemyRepository subclass works; select()/scalars() queries run in Python."""
    uow = TwinUnitOfWork()
    uow.store.add(*(Item(name=str(r), rank=r) for r in (1, 5, 2, None, 0)))
    async with uow:
        assert isinstance(uow.items, InMemoryRepository)
        assert isinstance(uow.items, LowRank)
        assert [i.rank for i in await uow.items.low()] == [2, 1]


async def test_in_memory_unit_of_work_mirrors_an_application_unit_of_work() -> None:
    """in_memory_unit_of_work(AppUnitOfWork) declares the same repositories, as twins."""
    cls = in_memory_unit_of_work(ContractUnitOfWork)
    uow: Any = cls()
    async with uow:
        assert isinstance(uow.items, ItemRepository)
        assert isinstance(uow.items, InMemoryRepository)
        uow.items.add(Item(name="x", rank=1))
        assert [i.name for i in await uow.items.ranked()] == ["x"]


async def test_expressions_it_cannot_evaluate_name_themselves() -> None:
    """A SQL function in a filter is a ConfigurationError that says what to do instead."""
    repo = InMemoryRepository(model=Item)
    with pytest.raises(ConfigurationError, match="cannot evaluate"):
        await repo.list(func.lower(Item.name) == "a")


def test_an_unmapped_class_is_a_configuration_error() -> None:
    """The twin reads mapper metadata, so an unmapped class is refused with a hint."""

    class NotMapped:
        pass

    with pytest.raises(ConfigurationError, match="not mapped"):
        InMemoryRepository(model=NotMapped)


def test_the_twin_overrides_every_hook_the_unit_of_work_template_calls() -> None:
    """A twin class also inherits the application's SQL unit of work: every template hook must be the twin's own."""
    import inspect as _inspect
    import re as _re

    from keel.infrastructure.unit_of_work import SqlAlchemyUnitOfWork
    from keel.service_layer.unit_of_work import AbstractUnitOfWork
    from keel.testing import InMemoryUnitOfWork

    called = set(_re.findall(r"self\.(_[a-z_]+)\(", _inspect.getsource(AbstractUnitOfWork)))
    sql_hooks = {name for name in called if name in SqlAlchemyUnitOfWork.__dict__}
    assert sql_hooks, "the template calls hooks the SQL unit of work implements"
    missing = sorted(name for name in sql_hooks if name not in InMemoryUnitOfWork.__dict__)
    assert not missing, f"InMemoryUnitOfWork must override {missing}"
