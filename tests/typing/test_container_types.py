"""Types users lean on: the container's unit of work and the in-memory twin (mypy checks this module too)."""

from __future__ import annotations

from pathlib import Path
from typing import assert_type

import pytest
from dependency_injector import providers
from examples.allocation.container import AllocationContainer
from examples.allocation.domain.model import Batch, Product
from examples.allocation.unit_of_work import AllocationUnitOfWork

from keel.config import KeelSettings
from keel.container import KeelContainer, running
from keel.infrastructure.unit_of_work import SqlAlchemyUnitOfWork
from keel.testing import InMemoryStore, InMemoryUnitOfWork, in_memory_unit_of_work


async def stock(uow: AllocationUnitOfWork, sku: str, qty: int) -> None:
    """A handler-shaped function typed with the application's unit of work."""
    async with uow:
        uow.products.add(Product(sku, [Batch(f"{sku}-1", sku, qty)]))
        await uow.commit()


async def test_an_application_containers_unit_of_work_is_typed_and_built_as_its_class(tmp_path: Path) -> None:
    """KeelContainer[AllocationUnitOfWork] types unit_of_work() as AllocationUnitOfWork, and builds one."""
    container = AllocationContainer()
    container.settings.override(
        providers.Object(KeelSettings(database={"url": f"sqlite+aiosqlite:///{tmp_path}/t.db"}))
    )
    async with running(container):
        uow = container.unit_of_work()
        assert_type(uow, AllocationUnitOfWork)
        assert type(uow) is AllocationUnitOfWork


def test_a_bare_keel_container_types_the_base_unit_of_work() -> None:
    """Without a type argument the container's unit of work is the SQL base class."""

    class Plain(KeelContainer):
        pass

    assert_type(Plain().unit_of_work, providers.Factory[SqlAlchemyUnitOfWork])
    assert Plain.unit_of_work_class() is SqlAlchemyUnitOfWork


async def test_the_twin_of_an_application_unit_of_work_is_one() -> None:
    """in_memory_unit_of_work(App)() passes a `uow: App` annotation, under mypy and isinstance alike."""
    twin = in_memory_unit_of_work(AllocationUnitOfWork)
    store = InMemoryStore()
    uow = twin(store)
    assert_type(uow, AllocationUnitOfWork)
    assert isinstance(uow, AllocationUnitOfWork)
    assert isinstance(uow, InMemoryUnitOfWork)
    await stock(uow, "LAMP", 10)
    async with twin(store) as again:
        assert (await again.products.get("LAMP")).batch("LAMP-1").available_quantity == 10


def test_the_twin_never_reaches_the_sql_session() -> None:
    """The twin inherits the application's class but not its database: `session` is an AttributeError."""
    uow = in_memory_unit_of_work(AllocationUnitOfWork)()
    assert not hasattr(uow, "session")
    with pytest.raises(AttributeError):
        _ = uow.session


class FakeAllocationUnitOfWork(InMemoryUnitOfWork, AllocationUnitOfWork):
    """The twin declared by hand: mypy sees both the twin's counters and the application's type."""


async def test_a_hand_declared_twin_is_both_classes() -> None:
    """`class Fake(InMemoryUnitOfWork, AppUnitOfWork)` builds with no session factory and twins the repositories."""
    uow = FakeAllocationUnitOfWork()
    await stock(uow, "CHAIR", 3)
    assert uow.committed
    assert uow.commits == 1
