"""The SQLAlchemy unit of work on every backend: commit, rollback, events, locking."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import ForeignKey, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column, relationship

from keel import (
    AggregateRoot,
    ConcurrencyError,
    NotFoundError,
    SqlAlchemyRepository,
    SqlAlchemyUnitOfWork,
    UnitOfWorkError,
)
from keel.infrastructure.database import translating
from keel.orm import Base, VersionMixin
from tests.models import Account, Allocated, AppUnitOfWork, Counter, Product
from tests.support.seeding import seed


async def test_commit_persists_and_releases_events(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """Committed work is visible to a new unit of work and its events are collected."""
    uow = AppUnitOfWork(session_factory)
    async with uow:
        uow.products.add(Product(sku="LAMP", stock=10))
        await uow.commit()
    async with uow:
        product = await uow.products.get("LAMP")
        product.allocate(3)
        assert list(uow.collect_new_events()) == []
        await uow.commit()
    events = list(uow.collect_new_events())
    assert len(events) == 1
    assert isinstance(events[0], Allocated)
    assert (events[0].sku, events[0].qty) == ("LAMP", 3)
    async with uow:
        assert (await uow.products.get("LAMP")).stock == 7


async def test_leaving_without_commit_rolls_back(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """Work not committed is discarded, and so are its events."""
    uow = AppUnitOfWork(session_factory)
    async with uow:
        uow.products.add(Product(sku="LAMP", stock=10))
        await uow.commit()
    async with uow:
        product = await uow.products.get("LAMP")
        product.allocate(3)
        uow.products.add(Product(sku="DESK", stock=1))
    assert list(uow.collect_new_events()) == []
    async with uow:
        assert (await uow.products.get("LAMP")).stock == 10
        assert await uow.products.get_or_none("DESK") is None


async def test_an_exception_rolls_back_and_propagates(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """An error inside the block rolls back and is not swallowed."""
    uow = AppUnitOfWork(session_factory)
    with pytest.raises(RuntimeError, match="boom"):
        async with uow:
            uow.products.add(Product(sku="LAMP", stock=10))
            raise RuntimeError("boom")
    async with uow:
        assert await uow.products.count() == 0


async def test_explicit_rollback_drops_events(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """rollback() undoes the work and no event of it is ever collected."""
    uow = AppUnitOfWork(session_factory)
    async with uow:
        uow.products.add(Product(sku="LAMP", stock=10))
        await uow.commit()
    async with uow:
        (await uow.products.get("LAMP")).allocate(1)
        await uow.rollback()
        await uow.commit()
    assert list(uow.collect_new_events()) == []


async def test_stale_detached_copy_fails_on_commit(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """Saving a copy loaded before someone else's change raises ConcurrencyError with the held version."""
    uow = AppUnitOfWork(session_factory)
    async with uow:
        uow.products.add(Product(sku="LAMP", stock=10))
        await uow.commit()
    async with uow:
        stale = await uow.products.get("LAMP")
    assert stale.version == 1
    async with uow:
        fresh = await uow.products.get("LAMP")
        fresh.allocate(1)
        await uow.commit()
        assert fresh.version == 2
    stale.stock = 0
    async with uow:
        uow.products.add(stale)
        with pytest.raises(ConcurrencyError) as caught:
            await uow.commit()
    assert caught.value.entity == "Product"
    assert caught.value.id == "LAMP"
    assert caught.value.version == 1
    async with uow:
        assert (await uow.products.get("LAMP")).stock == 9


async def test_version_starts_at_one_and_rises_per_flushed_change(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """version is 1 after insert and +1 per committed change; timestamps are aware UTC."""
    uow = AppUnitOfWork(session_factory)
    async with uow:
        product = uow.products.add(Product(sku="LAMP", stock=10))
        await uow.commit()
    assert product.version == 1
    created = product.created_at
    async with uow:
        product = await uow.products.get("LAMP")
        assert product.created_at.utcoffset() is not None
        assert product.created_at.tzinfo is not None
        assert product.created_at.utcoffset() == timedelta(0)
        product.stock = 5
        await uow.commit()
        product.stock = 4
        await uow.commit()
    assert product.version == 3
    assert product.updated_at >= created
    async with uow:
        reloaded = await uow.products.get("LAMP")
        assert reloaded.version == 3
        assert reloaded.created_at == created


async def test_imperatively_mapped_class_gets_locking_and_timestamps(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """A pure domain class behaves like a declarative model: version, timestamps, stale copies."""
    uow = AppUnitOfWork(session_factory)
    async with uow:
        uow.accounts.add(Account("A-1", 100))
        await uow.commit()
    async with uow:
        stale = await uow.accounts.get("A-1")
    async with uow:
        account = await uow.accounts.get("A-1")
        assert account.version == 1  # type: ignore[attr-defined]
        assert account.created_at.utcoffset().total_seconds() == 0  # type: ignore[attr-defined]
        before = account.updated_at  # type: ignore[attr-defined]
        account.deposit(5)
        await uow.commit()
        assert account.version == 2  # type: ignore[attr-defined]
        assert account.updated_at > before  # type: ignore[attr-defined]
    stale.deposit(1000)
    async with uow:
        uow.accounts.add(stale)
        with pytest.raises(ConcurrencyError) as caught:
            await uow.commit()
    assert caught.value.entity == "Account"
    assert caught.value.version == 1


async def test_reentering_an_open_unit_of_work_is_an_error(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """One instance, one `async with` at a time."""
    uow = AppUnitOfWork(session_factory)
    async with uow:
        with pytest.raises(UnitOfWorkError):
            async with uow:
                pass  # pragma: no cover


async def test_repositories_exist_only_inside_the_block(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """Using a declared repository outside `async with` is a clear keel error."""
    uow = AppUnitOfWork(session_factory)
    with pytest.raises(UnitOfWorkError, match="inside `async with uow:`"):
        _ = uow.products
    with pytest.raises(UnitOfWorkError):
        await uow.commit()


async def test_missing_entity_is_a_typed_not_found(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """get() of an absent id raises NotFoundError naming the entity and id."""
    async with AppUnitOfWork(session_factory) as uow:
        with pytest.raises(NotFoundError) as caught:
            await uow.products.get("NOPE")
    assert caught.value.code == "not_found"
    assert caught.value.details == {"entity": "Product", "id": "NOPE"}


async def test_cancellation_still_closes_the_session(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """Cancelling the task inside the block rolls back and releases the connection."""
    uow = AppUnitOfWork(session_factory)
    started = asyncio.Event()

    async def work() -> None:
        async with uow:
            uow.products.add(Product(sku="LAMP", stock=1))
            await uow.session.flush()
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(work())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not uow.is_open
    async with AppUnitOfWork(session_factory) as other:
        assert await other.products.count() == 0


async def test_hand_built_session_factory_works(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """A factory with SQLAlchemy's defaults (expire_on_commit=True) still lets you read after commit."""
    hand_built = async_sessionmaker(session_factory.kw["bind"])
    uow = AppUnitOfWork(hand_built)
    async with uow:
        product = uow.products.add(Product(sku="LAMP", stock=2))
        await uow.commit()
        assert product.stock == 2
        rows = (await uow.session.execute(select(Product.sku))).scalars().all()
    assert rows == ["LAMP"]


@pytest.mark.slow
async def test_no_lost_updates_under_concurrency(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """20 tasks x 10 increments with retry on ConcurrencyError end at exactly 200, with real conflicts."""
    await seed(AppUnitOfWork(session_factory), counters=[Counter(id=1, value=0)])

    conflicts = 0
    ready = 0
    all_ready = asyncio.Event()

    async def worker() -> None:
        nonlocal conflicts, ready
        ready += 1
        if ready == 20:
            all_ready.set()
        await all_ready.wait()
        for _ in range(10):
            while True:
                try:
                    async with AppUnitOfWork(session_factory) as uow:
                        counter = await uow.counters.get(1)
                        counter.value += 1
                        await asyncio.sleep(0)  # let the other tasks read the same version
                        await uow.commit()
                    break
                except ConcurrencyError:
                    conflicts += 1

    await asyncio.gather(*(worker() for _ in range(20)))
    async with AppUnitOfWork(session_factory) as uow:
        counter = await uow.counters.get(1)
    assert counter.value == 200
    assert counter.version == 201
    assert conflicts > 0


async def test_stale_copy_flushed_by_a_query_is_a_concurrency_error(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """An autoflush inside a repository read reports the stale version as ConcurrencyError too."""
    uow = AppUnitOfWork(session_factory)
    async with uow:
        uow.products.add(Product(sku="LAMP", stock=10))
        await uow.commit()
    async with uow:
        stale = await uow.products.get("LAMP")
    async with uow:
        (await uow.products.get("LAMP")).allocate(1)
        await uow.commit()
    stale.stock = 0
    async with uow:
        uow.products.add(stale)
        with pytest.raises(ConcurrencyError):
            await uow.products.list()


# --- stale rows changed in bulk ---------------------------------------------------------
# asyncpg reports no row counts for batched statements, so SQLAlchemy alone would
# not notice two stale rows deleted in one flush; keel checks them (stale_deletes).


class StaleParent(Base, AggregateRoot, VersionMixin):
    __tablename__ = "core_stale_parents"
    id: Mapped[int] = mapped_column(primary_key=True)
    children: Mapped[list[StaleChild]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="StaleChild.id"
    )


class StaleChild(Base, VersionMixin):
    __tablename__ = "core_stale_children"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("core_stale_parents.id"))
    value: Mapped[int] = mapped_column(default=0)


class FamilyUnitOfWork(SqlAlchemyUnitOfWork):
    parents: SqlAlchemyRepository[StaleParent]
    counters: SqlAlchemyRepository[Counter]


async def seed_counters(session_factory: async_sessionmaker[AsyncSession], *ids: int) -> None:
    await seed(AppUnitOfWork(session_factory), counters=[Counter(id=i, value=0) for i in ids])


async def change_elsewhere(session_factory: async_sessionmaker[AsyncSession], *ids: int) -> None:
    """Another unit of work updates ``ids`` and commits (their versions become 2)."""
    async with AppUnitOfWork(session_factory) as other:
        for counter in await other.counters.get_many(list(ids)):
            counter.value = 99
        await other.commit()


async def counter_values(session_factory: async_sessionmaker[AsyncSession]) -> dict[int, int]:
    async with AppUnitOfWork(session_factory) as uow:
        return {c.id: c.value for c in await uow.counters.list()}


async def test_two_stale_rows_hard_deleted_in_one_commit_raise_concurrency_error(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Deleting rows someone else changed fails on commit, naming every stale row; none is deleted."""
    await seed_counters(session_factory, 1, 2, 3)
    async with AppUnitOfWork(session_factory) as uow:
        loaded = await uow.counters.get_many([1, 2])
        await change_elsewhere(session_factory, 1, 2)
        for counter in loaded:
            await uow.counters.hard_delete(counter)
        with pytest.raises(ConcurrencyError) as caught:
            await uow.commit()
    assert caught.value.entity == "Counter"
    assert sorted(caught.value.details["ids"]) == ["1", "2"]
    assert await counter_values(session_factory) == {1: 99, 2: 99, 3: 0}


async def test_a_stale_row_deleted_beside_current_ones_is_the_one_named(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """One stale row among current ones: ConcurrencyError covers it; nothing is deleted."""
    await seed_counters(session_factory, 1, 2, 3)
    async with AppUnitOfWork(session_factory) as uow:
        loaded = await uow.counters.get_many([1, 2, 3])
        await change_elsewhere(session_factory, 2)
        for counter in loaded:
            await uow.counters.hard_delete(counter)
        with pytest.raises(ConcurrencyError) as caught:
            await uow.commit()
    # PostgreSQL names exactly the stale row; SQLite's own count says only that some row of the batch was.
    assert caught.value.entity == "Counter"
    assert "2" in caught.value.details.get("ids", [str(caught.value.id)])
    assert await counter_values(session_factory) == {1: 0, 2: 99, 3: 0}


async def test_rows_deleted_by_someone_else_count_as_stale_too(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Deleting rows that another unit of work already deleted is a ConcurrencyError, as for one row."""
    await seed_counters(session_factory, 1, 2)
    async with AppUnitOfWork(session_factory) as uow:
        loaded = await uow.counters.get_many([1, 2])
        async with AppUnitOfWork(session_factory) as other:
            for counter in await other.counters.get_many([1, 2]):
                await other.counters.hard_delete(counter)
            await other.commit()
        for counter in loaded:
            await uow.counters.hard_delete(counter)
        with pytest.raises(ConcurrencyError):
            await uow.commit()


async def test_stale_rows_deleted_through_the_session_fail_on_an_explicit_flush(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """session.delete + session.flush(), bypassing the repository and commit, is checked as well."""
    await seed_counters(session_factory, 1, 2)
    async with AppUnitOfWork(session_factory) as uow:
        loaded = await uow.counters.get_many([1, 2])
        await change_elsewhere(session_factory, 1, 2)
        for counter in loaded:
            await uow.session.delete(counter)
        with pytest.raises(ConcurrencyError), translating():
            await uow.session.flush()
    assert await counter_values(session_factory) == {1: 99, 2: 99}


async def test_current_rows_deleted_together_commit(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """The version check finds nothing wrong with rows nobody else touched."""
    await seed_counters(session_factory, 1, 2, 3)
    async with AppUnitOfWork(session_factory) as uow:
        for counter in await uow.counters.get_many([1, 2]):
            await uow.counters.hard_delete(counter)
        await uow.commit()
    assert await counter_values(session_factory) == {3: 0}


async def test_two_stale_rows_updated_in_one_commit_raise_concurrency_error(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Versioned UPDATEs of several stale rows fail too (SQLAlchemy runs and counts them one by one)."""
    await seed_counters(session_factory, 1, 2)
    async with AppUnitOfWork(session_factory) as uow:
        loaded = await uow.counters.get_many([1, 2])
        await change_elsewhere(session_factory, 1, 2)
        for counter in loaded:
            counter.value = 7
        with pytest.raises(ConcurrencyError):
            await uow.commit()
    assert await counter_values(session_factory) == {1: 99, 2: 99}


async def test_stale_children_removed_by_delete_orphan_raise_concurrency_error(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Rows deleted by a cascade the flush discovers (delete-orphan) are version-checked too."""
    await seed(
        FamilyUnitOfWork(session_factory),
        parents=[StaleParent(id=1, children=[StaleChild(id=1), StaleChild(id=2), StaleChild(id=3)])],
    )
    async with FamilyUnitOfWork(session_factory) as uow:
        parent = await uow.parents.get(1)
        async with FamilyUnitOfWork(session_factory) as other:
            for child in (await other.parents.get(1)).children[:2]:
                child.value = 5
            await other.commit()
        parent.children = parent.children[2:]
        with pytest.raises(ConcurrencyError):
            await uow.commit()
    async with FamilyUnitOfWork(session_factory) as uow:
        assert [(c.id, c.value) for c in (await uow.parents.get(1)).children] == [(1, 5), (2, 5), (3, 0)]


async def test_committed_says_whether_the_unit_of_work_ever_committed(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """committed is False until a commit succeeds (a failed or rolled-back block leaves it False)."""
    await seed_counters(session_factory, 1)
    uow = AppUnitOfWork(session_factory)
    async with uow:
        loaded = await uow.counters.get(1)
        await change_elsewhere(session_factory, 1)
        loaded.value = 5
        with pytest.raises(ConcurrencyError):
            await uow.commit()
    assert not uow.committed
    async with uow:
        (await uow.counters.get(1)).value = 6
        await uow.commit()
    assert uow.committed


async def test_stale_deletes_across_a_class_and_its_subclass_are_caught(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Deleting a stale base-class row and a stale subclass row in one flush raises ConcurrencyError."""
    from sqlalchemy import update

    from tests.models import Animal, Dog

    async with session_factory() as session:
        session.add_all([Animal(id=1), Dog(id=2)])
        await session.commit()
    assert Dog.__mapper__.version_id_col is Animal.__mapper__.version_id_col
    async with AppUnitOfWork(session_factory) as uow:
        animals = (await uow.session.scalars(select(Animal).order_by(Animal.id))).all()
        assert [type(a) for a in animals] == [Animal, Dog]
        async with session_factory() as other:
            await other.execute(update(Animal).values(version=Animal.version + 1))
            await other.commit()
        for animal in animals:
            await uow.session.delete(animal)
        with pytest.raises(ConcurrencyError):
            await uow.commit()
    async with session_factory() as session:
        assert (await session.scalars(select(Animal.id).order_by(Animal.id))).all() == [1, 2]
