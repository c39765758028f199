"""Contract: a change anywhere inside an aggregate is version-checked against the whole aggregate.

Two units of work that each book "the last seat" (append a child), resize a
booking (change a child row) or cancel one (remove a child) cannot both
commit, on the in-memory twin, SQLite and PostgreSQL, for a declarative and
an imperatively mapped aggregate alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from keel import ConcurrencyError
from keel.testing import InMemoryStore, in_memory_unit_of_work
from tests.contract.aggregate_models import Flight, LockUnitOfWork, Show, SoldOut

NewUow = Callable[[], Any]
InMemoryLockUnitOfWork = in_memory_unit_of_work(LockUnitOfWork)


@pytest.fixture
def new_uow(backend: str, request: pytest.FixtureRequest) -> NewUow:
    if backend == "memory":
        store = InMemoryStore()
        return lambda: InMemoryLockUnitOfWork(store)
    session_factory = request.getfixturevalue("session_factory")
    return lambda: LockUnitOfWork(session_factory)


class Kind:
    """One mapping style: how to build its root and which repository holds it."""

    def __init__(self, repository: str, build: Callable[[int], Any], key: Any) -> None:
        self.repository = repository
        self.build = build
        self.key = key

    def repo(self, uow: Any) -> Any:
        return getattr(uow, self.repository)


KINDS = {
    "declarative": Kind("shows", lambda capacity: Show(id=1, capacity=capacity), 1),
    "imperative": Kind("flights", lambda capacity: Flight("KL1", capacity), "KL1"),
}


@pytest.fixture(params=list(KINDS))
def kind(request: pytest.FixtureRequest) -> Kind:
    return KINDS[str(request.param)]


async def seed(new_uow: NewUow, kind: Kind, capacity: int, booked: list[str]) -> None:
    async with new_uow() as uow:
        root = kind.repo(uow).add(kind.build(capacity))
        for name in booked:
            root.book(name)
        await uow.commit()


async def load(new_uow: NewUow, kind: Kind) -> Any:
    async with new_uow() as uow:
        return await kind.repo(uow).get(kind.key)


async def race(new_uow: NewUow, kind: Kind, change: Callable[[Any, int], None]) -> list[BaseException | None]:
    """Two open units of work load the same root, change it, then commit at the same time."""
    loaded = asyncio.Event()
    count = 0

    async def writer(n: int) -> None:
        nonlocal count
        async with new_uow() as uow:
            root = await kind.repo(uow).get(kind.key)
            count += 1
            if count == 2:
                loaded.set()
            await loaded.wait()  # both hold the same version before either commits
            change(root, n)
            await uow.commit()

    results = await asyncio.gather(writer(0), writer(1), return_exceptions=True)
    return [r if isinstance(r, BaseException) else None for r in results]


def one_won(outcomes: list[BaseException | None]) -> None:
    assert sorted(type(o).__name__ for o in outcomes) == ["ConcurrencyError", "NoneType"], outcomes
    error = next(o for o in outcomes if isinstance(o, ConcurrencyError))
    assert error.details["entity"] in {"Show", "Flight"}  # the root is named, not a child
    assert error.details["version"] == 1


async def test_two_units_of_work_booking_the_last_seat_cannot_both_commit(new_uow: NewUow, kind: Kind) -> None:
    """Appending a child to the same root in two units of work: one commits, the other gets ConcurrencyError."""
    await seed(new_uow, kind, capacity=3, booked=["ann", "bob"])
    one_won(await race(new_uow, kind, lambda root, n: root.book(f"late-{n}")))
    root = await load(new_uow, kind)
    assert root.booked == 3
    assert root.version == 2


async def test_changing_a_child_row_conflicts_with_a_concurrent_change_of_the_aggregate(
    new_uow: NewUow, kind: Kind
) -> None:
    """Resizing two different children concurrently (together over capacity): only one commits."""
    await seed(new_uow, kind, capacity=4, booked=["ann", "bob"])
    one_won(await race(new_uow, kind, lambda root, n: root.resize(["ann", "bob"][n], 3)))
    root = await load(new_uow, kind)
    assert root.booked == 4
    assert root.version == 2


async def test_removing_a_child_conflicts_with_a_concurrent_change_of_the_aggregate(
    new_uow: NewUow, kind: Kind
) -> None:
    """Two units of work each cancel a different booking: the second to commit gets ConcurrencyError."""
    await seed(new_uow, kind, capacity=2, booked=["ann", "bob"])
    one_won(await race(new_uow, kind, lambda root, n: root.cancel(["ann", "bob"][n])))
    root = await load(new_uow, kind)
    assert root.booked == 1
    assert root.version == 2


async def test_many_buyers_never_sell_more_seats_than_the_capacity(new_uow: NewUow, kind: Kind) -> None:
    """Ten concurrent buyers retrying on ConcurrencyError sell exactly the capacity, with real conflicts."""
    await seed(new_uow, kind, capacity=6, booked=[])
    conflicts = 0
    sold_out = 0
    start = asyncio.Event()

    async def buyer(n: int) -> None:
        nonlocal conflicts, sold_out
        await start.wait()
        while True:
            try:
                async with new_uow() as uow:
                    root = await kind.repo(uow).get(kind.key)
                    await asyncio.sleep(0)  # let the other buyers read the same version
                    root.book(f"buyer-{n}")
                    await uow.commit()
            except ConcurrencyError:
                conflicts += 1
            except SoldOut:
                sold_out += 1
                return
            else:
                return

    tasks = [asyncio.ensure_future(buyer(n)) for n in range(10)]
    start.set()
    await asyncio.gather(*tasks)
    root = await load(new_uow, kind)
    assert root.booked == 6
    assert sold_out == 4
    assert conflicts > 0
    assert root.version == 7


async def test_a_new_root_with_children_starts_at_version_one(new_uow: NewUow, kind: Kind) -> None:
    """Creating a root together with its children is one insert of version 1."""
    await seed(new_uow, kind, capacity=5, booked=["ann", "bob"])
    assert (await load(new_uow, kind)).version == 1


async def test_a_root_and_its_children_changed_together_rise_by_one_version(new_uow: NewUow, kind: Kind) -> None:
    """One commit changing the root's own column and two children bumps the version once."""
    await seed(new_uow, kind, capacity=5, booked=["ann"])
    async with new_uow() as uow:
        root = await kind.repo(uow).get(kind.key)
        root.title = "matinee"
        root.resize("ann", 2)
        root.book("bob")
        await uow.commit()
    assert root.version == 2
    assert (await load(new_uow, kind)).version == 2


async def test_a_commit_that_changes_nothing_in_the_aggregate_keeps_its_version(new_uow: NewUow, kind: Kind) -> None:
    """Reading the aggregate (and assigning a child the value it has) writes nothing."""
    await seed(new_uow, kind, capacity=5, booked=["ann"])
    async with new_uow() as uow:
        root = await kind.repo(uow).get(kind.key)
        root.resize("ann", 1)
        await uow.commit()
    assert (await load(new_uow, kind)).version == 1


async def test_a_stale_copy_whose_children_changed_elsewhere_is_refused(new_uow: NewUow, kind: Kind) -> None:
    """A root read before another commit changed only its children cannot be saved over that change."""
    await seed(new_uow, kind, capacity=2, booked=["ann"])
    async with new_uow() as uow:
        stale = await kind.repo(uow).get(kind.key)
    async with new_uow() as uow:
        (await kind.repo(uow).get(kind.key)).book("bob")
        await uow.commit()
    stale.book("carl")
    with pytest.raises(ConcurrencyError):
        async with new_uow() as uow:
            kind.repo(uow).add(stale)
            await uow.commit()
    assert (await load(new_uow, kind)).booked == 2
