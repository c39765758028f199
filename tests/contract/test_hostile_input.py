"""Contract: hostile ids, filter values, limits and large id lists are typed errors or answers, alike everywhere.

Issue 7 items 9 and 10: the same input gets the same outcome on the
in-memory twin, SQLite and PostgreSQL, and never a raw Python or driver error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from keel import Eq, In, Ne, Range, ValidationError, filters_from_query
from tests.contract.gauges import Gauge, Pair, gauge_uow_factory
from tests.support import seeding

NewUow = Callable[[], Any]


@pytest.fixture
def new_uow(backend: str, request: pytest.FixtureRequest) -> NewUow:
    return gauge_uow_factory(backend, request)


async def seed(new_uow: NewUow, count: int = 3) -> None:
    await seeding.seed(new_uow(), gauges=(Gauge(id=i, qty=i, code=f"c{i}") for i in range(1, count + 1)))


# --- ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["--5", "²", "\u0661", " 1", "1 ", "1.0", "1_0", "0x1", "", 1.9, 1.0, True, False, b"1", [1]]
)
async def test_ids_are_parsed_strictly_and_anything_unparseable_is_a_validation_error(
    new_uow: NewUow, bad: Any
) -> None:
    """Floats and booleans are not truncated, odd digit text is not parsed: get, get_or_none, get_many refuse them."""
    await seed(new_uow)
    async with new_uow() as uow:
        for call in (uow.gauges.get, uow.gauges.get_or_none, lambda i: uow.gauges.get_many([1, i])):
            with pytest.raises(ValidationError) as caught:
                await call(bad)
            assert caught.value.errors[0]["loc"] == ["id"]


async def test_well_formed_ids_find_their_row_or_miss(new_uow: NewUow) -> None:
    """An int or its plain decimal text finds the row; a well-formed id of no row is a miss, not an error."""
    await seed(new_uow)
    async with new_uow() as uow:
        assert (await uow.gauges.get("1")).id == 1
        assert (await uow.gauges.get("+2")).id == 2
        assert await uow.gauges.get_or_none("-1") is None
        assert await uow.gauges.get_or_none(2**31 - 1) is None
        assert [g.id for g in await uow.gauges.get_many(["3", 1, "07"])] == [3, 1]


@pytest.mark.parametrize("bad", ["1,2", b"12", 5, None, {"id": 1}])
async def test_get_many_wants_a_list_of_ids(new_uow: NewUow, bad: Any) -> None:
    """Text (whose characters are not ids), a number or a mapping instead of a list is a ValidationError."""
    async with new_uow() as uow:
        with pytest.raises(ValidationError) as caught:
            await uow.gauges.get_many(bad)
    assert caught.value.errors[0]["loc"] == ["ids"]


async def test_get_many_with_forty_thousand_ids_keeps_the_order_asked(new_uow: NewUow) -> None:
    """More ids than any driver's parameter limit: the found rows come back once each, in request order."""
    await seed(new_uow, 5)
    ids = [*range(40_000, 0, -1), 2, 4]
    async with new_uow() as uow:
        found = await uow.gauges.get_many(ids)
    assert [g.id for g in found] == [5, 4, 3, 2, 1]


async def test_get_many_with_many_composite_keys_keeps_the_order_asked(new_uow: NewUow) -> None:
    """Two-column keys are chunked too: 20,000 key pairs in one call."""
    await seeding.seed(new_uow(), pairs=[Pair(left=1, right="a"), Pair(left=2, right="b"), Pair(left=3, right="c")])
    keys = [(i, "x") for i in range(20_000)] + [(3, "c"), (1, "a"), (2, "z")]
    async with new_uow() as uow:
        found = await uow.pairs.get_many(keys)
        with pytest.raises(ValidationError):
            await uow.pairs.get_many([(1.5, "a")])
    assert [(p.left, p.right) for p in found] == [(3, "c"), (1, "a")]


# --- filter values -----------------------------------------------------------------------

OUT_OF_RANGE = [
    ("qty", 2**31),
    ("qty", -(2**31) - 1),
    ("qty", 2**40),
    ("qty", 2**63),
    ("small", 2**15),
    ("big", 2**63),
    ("big", -(2**63) - 1),
    ("price", Decimal("1e20")),
    ("price", 1e20),
    ("price", "1e20"),
    ("price", "999999.996"),
    ("price", "NaN"),
    ("code", "sixsix"),
    ("code", "a\x00b"),
    ("qty", True),
]
IN_RANGE = [
    ("qty", 2**31 - 1),
    ("qty", -(2**31)),
    ("small", -(2**15)),
    ("big", 2**63 - 1),
    ("price", "999999.99"),
    ("price", Decimal("-999999.994")),
    ("code", "fivex"),
]


@pytest.mark.parametrize(("field", "value"), OUT_OF_RANGE, ids=[f"{f}={v!r}"[:30] for f, v in OUT_OF_RANGE])
async def test_filter_values_the_column_cannot_hold_are_validation_errors(
    new_uow: NewUow, field: str, value: Any
) -> None:
    """Equality keywords, Eq/Ne/In/Range and query parameters refuse them before SQL, naming the field."""
    await seed(new_uow)
    async with new_uow() as uow:
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: uow.gauges.list(**{field: value}),
            lambda: uow.gauges.count(Eq(field, value)),
            lambda: uow.gauges.count(Ne(field, value)),
            lambda: uow.gauges.count(In(field, [value])),
            lambda: uow.gauges.count(Range(field, ge=value)),
            lambda: uow.gauges.paginate_by_cursor(Range(field, lt=value)),
        ]
        if not isinstance(value, bool):
            calls.append(lambda: uow.gauges.list(*filters_from_query(Gauge, {f"{field}__gte": str(value)})))
        for call in calls:
            with pytest.raises(ValidationError) as caught:
                await call()
            assert caught.value.errors[0]["loc"] == ["filter", field]


@pytest.mark.parametrize(("field", "value"), IN_RANGE, ids=[f"{f}={v!r}"[:30] for f, v in IN_RANGE])
async def test_filter_values_at_the_edge_of_the_column_range_are_answered(
    new_uow: NewUow, field: str, value: Any
) -> None:
    """The largest values a column holds are ordinary filter values on every backend."""
    await seed(new_uow)
    async with new_uow() as uow:
        assert await uow.gauges.list(**{field: value}) == []
        assert await uow.gauges.count(Range(field, le=value)) >= 0


@pytest.mark.parametrize(
    "params",
    [
        {"id__gt": []},
        {"id__in": 5},
        {"id__in": None},
        {"id__not_in": {"a": 1}},
        {"id": {}},
        {"id": [[1]]},
        {"id": [None]},
        {"id__isnull": []},
        {"id__isnull": 1},
        {"code__contains": 5},
        {"code__startswith": None},
        {"qty__lt": None},
        {"qty": True},
        {7: "x"},
    ],
)
async def test_filter_parameters_that_are_not_text_or_numbers_are_validation_errors(
    new_uow: NewUow, params: dict[Any, Any]
) -> None:
    """JSON-ish values filters_from_query cannot use (lists, maps, nulls where a value is needed) are refused."""
    with pytest.raises(ValidationError) as caught:
        filters = filters_from_query(Gauge, params)
        async with new_uow() as uow:
            await uow.gauges.list(*filters)
    assert caught.value.errors


async def test_filter_parameters_may_be_numbers_lists_and_booleans_where_they_fit(new_uow: NewUow) -> None:
    """A JSON body's numbers filter like their text; a list means IN; isnull takes a boolean."""
    await seed(new_uow)
    params = {"qty__gte": 2, "id__in": [1, "2", 3], "code__isnull": False, "seen_at__isnull": True, "id__ne": 3}
    async with new_uow() as uow:
        assert [g.id for g in await uow.gauges.list(*filters_from_query(Gauge, params), order_by="id")] == [2]


# --- limits, offsets, pages ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs", [{"limit": 10**30}, {"offset": 2**63}, {"limit": -1}, {"offset": 1.5}, {"limit": True}]
)
async def test_limit_and_offset_beyond_what_every_backend_binds_are_validation_errors(
    new_uow: NewUow, kwargs: dict[str, Any]
) -> None:
    """limit/offset must be integers in 0..2**63-1 on every backend."""
    async with new_uow() as uow:
        with pytest.raises(ValidationError) as caught:
            await uow.gauges.list(**kwargs)
    assert caught.value.errors[0]["loc"] == list(kwargs)


async def test_the_largest_limit_and_offset_are_answered(new_uow: NewUow) -> None:
    """2**63-1 is a valid limit and offset everywhere."""
    await seed(new_uow)
    async with new_uow() as uow:
        assert len(await uow.gauges.list(limit=2**63 - 1)) == 3
        assert await uow.gauges.list(offset=2**63 - 1) == []


async def test_pages_beyond_what_every_backend_binds_are_validation_errors(new_uow: NewUow) -> None:
    """page must be in 1..2**63-1 and size within the maximum, else a ValidationError."""
    async with new_uow() as uow:
        for kwargs in ({"page": 10**30}, {"page": 0}, {"size": 10**30}, {"page": True}):
            with pytest.raises(ValidationError):
                await uow.gauges.paginate(**kwargs)
        assert (await uow.gauges.paginate(page=2**63 - 1, size=1)).items == []


# --- writes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"), [("qty", 2**31), ("big", 2**63), ("price", Decimal("1e7")), ("code", "x" * 6)]
)
async def test_update_many_refuses_values_the_column_cannot_hold(new_uow: NewUow, field: str, value: Any) -> None:
    """update_many checks its values against the column types before SQL, naming the column."""
    await seed(new_uow)
    async with new_uow() as uow:
        with pytest.raises(ValidationError) as caught:
            await uow.gauges.update_many(values={field: value})
        assert caught.value.errors[0]["loc"] == ["values", field]
        assert await uow.gauges.update_many(Eq("id", 1), values={"qty": 2**31 - 1}) == 1
