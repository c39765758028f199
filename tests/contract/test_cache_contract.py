"""Contract: every Cache (InMemoryCache and RedisCache on real Redis) stores, expires and guards alike."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel

from keel import CacheError
from keel.cache import Cache, InMemoryCache, RedisCache
from tests.support.redis_server import shared_redis_url


class Price(BaseModel):
    sku: str
    cents: int


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    """A fresh cache of each kind; the Redis one in a namespace of its own on the shared server."""
    made: Cache
    if request.param == "memory":
        made = InMemoryCache()
    else:
        made = RedisCache(shared_redis_url(), namespace=f"keel-test-{uuid.uuid4().hex[:8]}")
    yield made
    await made.clear()
    await made.close()


async def eventually_absent(cache: Cache, key: str, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await cache.get(key) is None:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_value_set_is_read_back_as_a_copy(cache: Cache) -> None:
    """JSON values come back equal, never as the object stored."""
    value = {"sku": "LAMP", "tags": ["a", "b"], "price": 1.5, "ok": True, "none": None}
    await cache.set("k", value)
    found = await cache.get("k")
    assert found == value
    assert found is not value


async def test_a_pydantic_model_is_stored_as_its_json(cache: Cache) -> None:
    """A model goes in as JSON and validates back into the model."""
    await cache.set("price", Price(sku="LAMP", cents=999))
    assert Price.model_validate(await cache.get("price")) == Price(sku="LAMP", cents=999)


async def test_a_value_json_cannot_hold_is_a_cache_error(cache: Cache) -> None:
    """Sets, objects and NaN are refused with CacheError, not stored half-way."""
    with pytest.raises(CacheError):
        await cache.set("bad", {1, 2})
    with pytest.raises(CacheError):
        await cache.set("nan", float("nan"))


async def test_a_missing_key_is_none(cache: Cache) -> None:
    """get() of an absent key returns None."""
    assert await cache.get("absent") is None


async def test_a_value_expires_after_its_ttl(cache: Cache) -> None:
    """A 50 ms TTL is gone shortly after; a long one stays."""
    await cache.set("short", 1, ttl=0.05)
    await cache.set("long", 2, ttl=60)
    assert await eventually_absent(cache, "short")
    assert await cache.get("long") == 2


async def test_delete_and_clear_drop_values(cache: Cache) -> None:
    """delete() drops the keys named; clear() drops the whole namespace."""
    await cache.set("a", 1)
    await cache.set("b", 2)
    await cache.set("c", 3)
    await cache.delete("a", "b")
    assert (await cache.get("a"), await cache.get("b"), await cache.get("c")) == (None, None, 3)
    await cache.clear()
    assert await cache.get("c") is None


async def test_a_fill_with_a_current_stamp_is_served(cache: Cache) -> None:
    """lookup (miss) -> fill with its entry -> the next lookup hits."""
    entry = await cache.lookup("e", ["g1", "g2"])
    assert not entry.hit
    assert await cache.fill("e", {"v": 1}, entry, ["g1", "g2"])
    again = await cache.lookup("e", ["g1", "g2"])
    assert (again.hit, again.value) == (True, {"v": 1})


async def test_a_fill_after_an_invalidation_is_refused(cache: Cache) -> None:
    """A reader whose lookup predates a finished write cannot put its value back."""
    entry = await cache.lookup("e", ["g"])
    token = await cache.begin_invalidation(["g"])
    await cache.end_invalidation(["g"], token)
    assert not await cache.fill("e", "old", entry, ["g"])
    assert not (await cache.lookup("e", ["g"])).hit


async def test_a_fill_while_a_writer_holds_a_guard_is_refused(cache: Cache) -> None:
    """Between begin and end of an invalidation nothing is filled, even with a fresh stamp."""
    token = await cache.begin_invalidation(["g"])
    during = await cache.lookup("e", ["g"])
    assert not await cache.fill("e", "maybe-old", during, ["g"])
    await cache.end_invalidation(["g"], token)
    after = await cache.lookup("e", ["g"])
    assert await cache.fill("e", "new", after, ["g"])
    assert (await cache.lookup("e", ["g"])).value == "new"


async def test_an_invalidation_hides_values_stored_under_the_guard(cache: Cache) -> None:
    """A value filled before a write is not served after it begins, nor after it ends."""
    entry = await cache.lookup("e", ["g"])
    assert await cache.fill("e", "v1", entry, ["g"])
    token = await cache.begin_invalidation(["g"])
    assert not (await cache.lookup("e", ["g"])).hit
    await cache.end_invalidation(["g"], token)
    assert not (await cache.lookup("e", ["g"])).hit


async def test_guards_are_independent(cache: Cache) -> None:
    """Invalidating one guard leaves values under other guards alone."""
    entry = await cache.lookup("e1", ["g1"])
    await cache.fill("e1", "one", entry, ["g1"])
    token = await cache.begin_invalidation(["g2"])
    await cache.end_invalidation(["g2"], token)
    assert (await cache.lookup("e1", ["g1"])).value == "one"


async def test_clear_also_hides_guarded_values(cache: Cache) -> None:
    """clear() moves the namespace on: filled values are gone too."""
    entry = await cache.lookup("e", ["g"])
    await cache.fill("e", "v", entry, ["g"])
    await cache.clear()
    assert not (await cache.lookup("e", ["g"])).hit


async def test_stats_count_hits_misses_and_fills(cache: Cache) -> None:
    """The stats object counts what happened."""
    entry = await cache.lookup("e", ["g"])
    await cache.fill("e", 1, entry, ["g"])
    await cache.lookup("e", ["g"])
    stats = cache.stats  # type: ignore[attr-defined]
    assert (stats.hits, stats.misses, stats.fills) == (1, 1, 1)
