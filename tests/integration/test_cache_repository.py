"""Cache-aside ``get``, cached lists and invalidation after commit, on SQLite and PostgreSQL, memory and Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keel import ConcurrencyError, NotFoundError
from keel.cache import Cache, InMemoryCache, RedisCache
from keel.infrastructure.cache._entities import encode_entity, entity_guard
from tests.contract.models import Owner
from tests.integration.cache_models import Colour, Gadget, GadgetUnitOfWork, ShortLivedUnitOfWork, ZooUnitOfWork
from tests.models import Dog
from tests.support.redis_server import shared_redis_url


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    made: Cache
    if request.param == "memory":
        made = InMemoryCache()
    else:
        made = RedisCache(shared_redis_url(), namespace=f"keel-test-{uuid.uuid4().hex[:8]}")
    yield made
    await made.clear()
    await made.close()


@pytest.fixture
def new_uow(session_factory: async_sessionmaker[AsyncSession], cache: Cache) -> Any:
    return lambda: GadgetUnitOfWork(session_factory, cache=cache)


async def add(new_uow: Any, *gadgets: Gadget) -> None:
    async with new_uow() as uow:
        uow.gadgets.add_many(gadgets)
        await uow.commit()


async def read(new_uow: Any, sku: str) -> tuple[int, int]:
    async with new_uow() as uow:
        gadget = await uow.gadgets.get(sku)
        return gadget.stock, gadget.version


def stats(cache: Cache) -> Any:
    return cache.stats  # type: ignore[attr-defined]


async def test_the_second_get_is_a_hit_and_returns_an_equal_attached_entity(new_uow: Any, cache: Cache) -> None:
    """Miss then hit; the hit's entity has every column (typed), its version, and belongs to the session."""
    await add(
        new_uow, Gadget(sku="LAMP", stock=5, price=Decimal("9.99"), colour=Colour.BLUE, launched=date(2024, 1, 2))
    )
    async with new_uow() as uow:
        first = await uow.gadgets.get("LAMP")
        expected = {k: getattr(first, k) for k in ("sku", "stock", "price", "colour", "token", "launched", "version")}
        expected["created_at"] = first.created_at
    async with new_uow() as uow:
        second = await uow.gadgets.get("LAMP")
        assert {k: getattr(second, k) for k in expected} == expected
        assert second.created_at.tzinfo is not None
        assert second in uow.session
        assert not uow.session.is_modified(second)
        assert second in uow.seen
    assert (stats(cache).misses, stats(cache).hits) == (1, 1)


async def test_a_change_through_a_cached_copy_commits_and_is_read_back(new_uow: Any) -> None:
    """An entity served from the cache is a normal persistent entity: its change is saved, version +1."""
    await add(new_uow, Gadget(sku="LAMP", stock=5))
    await read(new_uow, "LAMP")
    async with new_uow() as uow:
        gadget = await uow.gadgets.get("LAMP")
        gadget.stock = 4
        await uow.commit()
    assert await read(new_uow, "LAMP") == (4, 2)


async def test_a_commit_invalidates_the_entities_it_changed(new_uow: Any, cache: Cache) -> None:
    """After a commit elsewhere, the next read sees the new version, not the cached one."""
    await add(new_uow, Gadget(sku="LAMP", stock=5))
    assert await read(new_uow, "LAMP") == (5, 1)
    async with new_uow() as uow:
        (await uow.plain.get("LAMP")).stock = 3  # an uncached repository writes: still invalidated
        await uow.commit()
    assert await read(new_uow, "LAMP") == (3, 2)
    assert await read(new_uow, "LAMP") == (3, 2)
    assert stats(cache).hits >= 1


async def test_a_rollback_invalidates_nothing(new_uow: Any, cache: Cache) -> None:
    """Work left without commit (even flushed) leaves the cached value in place and served."""
    await add(new_uow, Gadget(sku="LAMP", stock=5))
    await read(new_uow, "LAMP")
    async with new_uow() as uow:
        gadget = await uow.gadgets.get("LAMP")
        gadget.stock = 1
        await uow.session.flush()
    hits = stats(cache).hits
    assert await read(new_uow, "LAMP") == (5, 1)
    assert stats(cache).hits == hits + 1


async def test_a_soft_deleted_entity_is_not_served_from_the_cache(new_uow: Any) -> None:
    """Deleting invalidates: get raises NotFoundError, and include_deleted still finds it."""
    await add(new_uow, Gadget(sku="LAMP", stock=5))
    await read(new_uow, "LAMP")
    async with new_uow() as uow:
        await uow.gadgets.delete(await uow.gadgets.get("LAMP"))
        await uow.commit()
    for _ in range(2):
        async with new_uow() as uow:
            with pytest.raises(NotFoundError):
                await uow.gadgets.get("LAMP")
            assert (await uow.gadgets.get("LAMP", include_deleted=True)).deleted_at is not None


async def test_a_stale_cached_copy_cannot_overwrite_a_newer_version(new_uow: Any, cache: Cache) -> None:
    """A stale value planted in the cache is served, but saving it is a ConcurrencyError: no lost update."""
    await add(new_uow, Gadget(sku="LAMP", stock=5))
    async with new_uow() as uow:
        stale = encode_entity(await uow.gadgets.get("LAMP"))
    async with new_uow() as uow:
        (await uow.gadgets.get("LAMP")).stock = 100
        await uow.commit()
    guards = [entity_guard("cache_gadgets", ("LAMP",)), "cache_gadgets:#all"]
    key = f"e:{guards[0]}"
    entry = await cache.lookup(key, guards)
    assert await cache.fill(key, stale, entry, guards)  # as if an invalidation had been lost
    with pytest.raises(ConcurrencyError):
        async with new_uow() as uow:
            gadget = await uow.gadgets.get("LAMP")
            assert (gadget.stock, gadget.version) == (5, 1)  # the stale copy was served
            gadget.stock -= 1
            await uow.commit()
    async with new_uow() as uow:
        assert (await uow.plain.get("LAMP")).stock == 100


async def test_a_unit_of_work_that_wrote_reads_its_own_rows_not_the_cache(new_uow: Any) -> None:
    """After a set-based update in the transaction, get() bypasses the cache both ways."""
    await add(new_uow, Gadget(sku="LAMP", stock=5), Gadget(sku="DESK", stock=1))
    await read(new_uow, "LAMP")
    async with new_uow() as uow:
        await uow.session.execute(update(Gadget).values(stock=Gadget.stock + 10))
        assert (await uow.gadgets.get("LAMP")).stock == 15
    assert await read(new_uow, "LAMP") == (5, 1)  # rolled back: the cached value is still right


async def test_a_set_based_update_invalidates_every_cached_entity_of_the_model(new_uow: Any) -> None:
    """update_many has no list of ids: the model's #all guard moves, so no cached entity survives it."""
    await add(new_uow, Gadget(sku="LAMP", stock=5), Gadget(sku="DESK", stock=1))
    await read(new_uow, "LAMP")
    await read(new_uow, "DESK")
    async with new_uow() as uow:
        await uow.gadgets.update_many(values={"stock": 0})
        await uow.commit()
    assert (await read(new_uow, "LAMP"))[0] == 0
    assert (await read(new_uow, "DESK"))[0] == 0


async def test_cached_lists_and_pages_follow_every_write_to_the_model(new_uow: Any, cache: Cache) -> None:
    """A cached list is served until any write to its model, then reloaded."""
    await add(new_uow, Gadget(sku="A", stock=1), Gadget(sku="B", stock=0), Gadget(sku="C", stock=2))
    for _ in range(2):
        async with new_uow() as uow:
            assert [g.sku for g in await uow.gadgets.in_stock()] == ["A", "C"]
            page = await uow.gadgets.page_of(1)
            assert ([g.sku for g in page.items], page.total) == (["A", "B"], 3)
            assert all(g in uow.seen for g in page.items)
    assert stats(cache).hits >= 2
    await add(new_uow, Gadget(sku="D", stock=3))
    async with new_uow() as uow:
        assert [g.sku for g in await uow.gadgets.in_stock()] == ["A", "C", "D"]
        assert (await uow.gadgets.page_of(2)).total == 4


async def test_a_value_expires_after_the_repositorys_cache_ttl(
    session_factory: async_sessionmaker[AsyncSession], cache: Cache
) -> None:
    """cache_ttl bounds how long get() serves a value: after it, the database answers again."""
    await add(lambda: ShortLivedUnitOfWork(session_factory, cache=cache), Gadget(sku="LAMP", stock=5))
    async with ShortLivedUnitOfWork(session_factory, cache=cache) as uow:
        await uow.gadgets.get("LAMP")
    misses = stats(cache).misses
    deadline = time.monotonic() + 3
    while stats(cache).misses == misses and time.monotonic() < deadline:
        async with ShortLivedUnitOfWork(session_factory, cache=cache) as uow:
            await uow.gadgets.get("LAMP")
    assert stats(cache).misses == misses + 1


async def test_a_subclass_loaded_through_its_base_is_cached_as_the_subclass(
    session_factory: async_sessionmaker[AsyncSession], cache: Cache
) -> None:
    """Joined inheritance: get() on the base returns the Dog, from the database and from the cache alike."""
    async with ZooUnitOfWork(session_factory, cache=cache) as uow:
        uow.session.add(Dog(id=1, bark="yap"))
        await uow.commit()
    for _ in range(2):
        async with ZooUnitOfWork(session_factory, cache=cache) as uow:
            animal = await uow.animals.get(1)
            assert isinstance(animal, Dog)
            assert (animal.kind, animal.version) == ("dog", 1)
    assert stats(cache).hits == 1


async def test_a_model_with_eager_relationships_is_read_from_the_database(
    session_factory: async_sessionmaker[AsyncSession], cache: Cache
) -> None:
    """Owner loads its tags with selectin: get() never consults the cache for it."""
    async with ZooUnitOfWork(session_factory, cache=cache) as uow:
        uow.owners.add(Owner(name="ann"))
        await uow.commit()
    for _ in range(2):
        async with ZooUnitOfWork(session_factory, cache=cache) as uow:
            assert (await uow.owners.get(1)).name == "ann"
    assert (stats(cache).hits, stats(cache).misses) == (0, 0)


async def test_an_unusable_cached_value_is_a_miss(new_uow: Any, cache: Cache) -> None:
    """A value the codec cannot rebuild (a column renamed since, say) is ignored: the database answers."""
    await add(new_uow, Gadget(sku="LAMP", stock=5))
    guards = [entity_guard("cache_gadgets", ("LAMP",)), "cache_gadgets:#all"]
    key = f"e:{guards[0]}"
    entry = await cache.lookup(key, guards)
    await cache.fill(key, {"t": None, "c": {"no_such_column": 1}}, entry, guards)
    assert await read(new_uow, "LAMP") == (5, 1)


async def test_an_upsert_that_updates_a_cached_row_invalidates_it(new_uow: Any) -> None:
    """upsert's ON CONFLICT DO UPDATE changes a row the cache holds: the next get reads the new values."""
    await add(new_uow, Gadget(sku="LAMP", stock=5))
    assert await read(new_uow, "LAMP") == (5, 1)  # now cached
    async with new_uow() as uow:
        await uow.gadgets.upsert(Gadget(sku="LAMP", stock=9))
        await uow.commit()
    assert await read(new_uow, "LAMP") == (9, 2)
