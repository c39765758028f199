"""The cache's small parts: the breaker, the in-memory LRU, the twin's cache, the entity codec."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from decimal import Decimal
from typing import Any

import pytest

from keel.cache import InMemoryCache
from keel.cross_cutting.cache._breaker import CircuitBreaker
from keel.infrastructure.cache._entities import Uncacheable, _decode, _encode
from keel.testing import InMemoryUnitOfWork, in_memory_unit_of_work
from tests.integration.cache_models import Colour, Gadget, GadgetUnitOfWork


def test_the_breaker_opens_after_consecutive_failures_and_lets_one_trial_through() -> None:
    """Closed -> open at the threshold; after reset_after one call is allowed; its success closes it."""
    breaker = CircuitBreaker(threshold=2, reset_after=0.05)
    assert breaker.allow()
    assert not breaker.failed()
    breaker.succeeded()  # a success in between resets the count
    assert not breaker.failed()
    assert breaker.failed()
    assert breaker.is_open
    assert not breaker.allow()
    deadline = time.monotonic() + 2
    while not breaker.allow():
        assert time.monotonic() < deadline
    assert not breaker.allow()  # one trial at a time
    assert breaker.succeeded()
    assert not breaker.is_open


def test_a_failed_trial_keeps_the_breaker_open() -> None:
    """The trial call failing re-opens it for another reset_after."""
    breaker = CircuitBreaker(threshold=1, reset_after=0.01)
    assert breaker.failed()
    deadline = time.monotonic() + 2
    while not breaker.allow():
        assert time.monotonic() < deadline
    assert not breaker.failed()
    assert breaker.is_open


async def test_the_in_memory_cache_drops_the_least_recently_used_value() -> None:
    """Past max_entries the value read least recently goes first."""
    cache = InMemoryCache(max_entries=2)
    await cache.set("a", 1)
    await cache.set("b", 2)
    assert await cache.get("a") == 1
    await cache.set("c", 3)
    assert (await cache.get("a"), await cache.get("b"), await cache.get("c")) == (1, None, 3)
    assert len(cache) == 2


async def test_a_writers_hold_lapses_after_the_lease() -> None:
    """A writer that never ends its invalidation blocks fills only for `lease` seconds."""
    cache = InMemoryCache(lease=0.02)
    await cache.begin_invalidation(["g"])
    deadline = time.monotonic() + 2
    while True:
        entry = await cache.lookup("e", ["g"])
        if await cache.fill("e", 1, entry, ["g"]):
            break
        assert time.monotonic() < deadline


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        3,
        1.5,
        float("inf"),
        "text",
        Decimal("1.10"),
        uuid.UUID(int=7),
        datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        date(2024, 1, 2),
        clock(3, 4),
        timedelta(seconds=90),
        b"\x00\xff",
        {"nested": [1, {"a": None}]},
        [1, 2],
    ],
)
def test_column_values_survive_the_entity_codec(value: Any) -> None:
    """Every supported column value comes back equal and of the same type."""
    back = _decode(_encode(value), None)
    assert back == value
    assert type(back) is type(value)


def test_enums_decode_through_their_column_type() -> None:
    """An enum is stored by name and rebuilt from the column's enum class."""
    column_type = Gadget.__table__.c.colour.type
    assert _decode(_encode(Colour.BLUE), column_type) is Colour.BLUE


def test_a_value_without_a_cached_form_is_uncacheable() -> None:
    """An object the codec does not know makes the entity uncacheable (it is then simply not cached)."""
    with pytest.raises(Uncacheable):
        _encode(object())


async def test_the_twin_takes_a_cache_and_invalidates_what_it_committed() -> None:
    """InMemoryUnitOfWork(cache=...) exposes uow.cache and moves the guards of committed rows on."""
    cache = InMemoryCache()
    twin = in_memory_unit_of_work(GadgetUnitOfWork)(cache=cache)
    assert twin.cache is cache
    async with twin:
        twin.gadgets.add(Gadget(sku="LAMP", stock=1))
        await twin.commit()
    entry = await cache.lookup("e", ["cache_gadgets:#lists"])
    await cache.fill("e", "list", entry, ["cache_gadgets:#lists"])
    async with twin:
        (await twin.gadgets.get("LAMP")).stock = 2
        await twin.commit()
    assert not (await cache.lookup("e", ["cache_gadgets:#lists"])).hit
    assert cache.stats.invalidations == 2
    assert InMemoryUnitOfWork().cache is None
