"""Property: any JSON-ish filter, paging or id input yields an answer or keel's ValidationError (issue 7 items 9-11).

Whatever a client sends in a query string or a JSON body (text, numbers of
any size, booleans, nulls, lists, maps), the twin, SQLite and PostgreSQL
answer with rows or refuse with a ``ValidationError``: never an
``IndexError``, ``OverflowError``, ``DatabaseError`` or another exception.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from keel import ValidationError, filters_from_query
from tests.contract.gauges import Gauge, gauge_uow_factory

NewUow = Callable[[], Any]

HOSTILE = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
FIELDS = ["id", "qty", "small", "big", "price", "code", "seen_at", "ratio"]
SUFFIXES = ["", "eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "icontains", "startswith", "isnull"]
edge_values = st.sampled_from(
    [2**31, -(2**31) - 1, 2**63, 10**30, 1e20, 1e300, float("nan"), "1e20", "NaN", "-0", "²", "--5", "a\x00", "\ud800"]
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8), edge_values)
json_ish = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=2)),
    max_leaves=6,
)
names = st.one_of(
    st.builds(lambda f, s: f"{f}__{s}" if s else f, st.sampled_from(FIELDS), st.sampled_from(SUFFIXES)),
    st.text(max_size=10),
)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_uow(backend: str, request: pytest.FixtureRequest) -> NewUow:
    return gauge_uow_factory(backend, request)


async def seed(new_uow: NewUow) -> None:
    async with new_uow() as uow:
        if await uow.gauges.count() == 0:
            uow.gauges.add_many(Gauge(id=i, qty=i * 10, code=f"c{i}", ratio=i / 3) for i in range(1, 4))
            await uow.commit()


async def answers_or_refuses(call: Callable[[], Any]) -> None:
    """Run ``call``: success or a ValidationError with structured errors; anything else fails the test."""
    error: ValidationError | None = None
    try:
        await call()
    except ValidationError as exc:
        error = exc
    if error is not None:
        assert error.code == "validation_error"
        assert error.errors


@HOSTILE
@given(params=st.dictionaries(names, json_ish, max_size=3))
@example(params={"id__gt": []})
@example(params={"id__in": 5})
@example(params={"price": 1e20})
@example(params={"qty": 2**31})
@example(params={"big__lt": 2**63})
@example(params={"code": "sixsix"})
async def test_any_json_ish_filter_input_is_answered_or_refused_with_a_validation_error(
    new_uow: NewUow, params: dict[str, Any]
) -> None:
    """filters_from_query plus list, count and a cursor page: rows or a ValidationError on every backend."""
    await seed(new_uow)

    async def run() -> None:
        filters = filters_from_query(Gauge, params)
        async with new_uow() as uow:
            await uow.gauges.list(*filters)
            await uow.gauges.count(*filters)
            await uow.gauges.paginate_by_cursor(*filters, size=2)

    await answers_or_refuses(run)


@HOSTILE
@given(field=st.sampled_from(FIELDS), value=json_ish)
@example(field="qty", value=2**40)
@example(field="price", value=1e20)
async def test_any_json_ish_equality_keyword_is_answered_or_refused_with_a_validation_error(
    new_uow: NewUow, field: str, value: Any
) -> None:
    """``list(field=value)`` with any value: rows or a ValidationError."""
    await seed(new_uow)
    async with new_uow() as uow:
        await answers_or_refuses(lambda: uow.gauges.list(**{field: value}))


@HOSTILE
@given(limit=json_ish, offset=json_ish, page=json_ish, size=json_ish)
@example(limit=10**30, offset=2**63, page=2**63, size=10**30)
async def test_any_json_ish_limit_offset_page_and_size_is_answered_or_refused(
    new_uow: NewUow, limit: Any, offset: Any, page: Any, size: Any
) -> None:
    """Paging arguments of any type and size: rows or a ValidationError."""
    await seed(new_uow)
    async with new_uow() as uow:
        await answers_or_refuses(lambda: uow.gauges.list(limit=limit, offset=offset))
        await answers_or_refuses(lambda: uow.gauges.paginate(page=page, size=size))
        await answers_or_refuses(lambda: uow.gauges.paginate_by_cursor(size=size))


@HOSTILE
@given(ids=json_ish)
@example(ids="--5")
@example(ids=1.9)
@example(ids=True)
@example(ids=[2**63, "²"])
async def test_any_json_ish_id_is_answered_or_refused(new_uow: NewUow, ids: Any) -> None:
    """get_or_none and get_many with any id input: an entity, a miss, or a ValidationError."""
    await seed(new_uow)
    async with new_uow() as uow:
        await answers_or_refuses(lambda: uow.gauges.get_or_none(ids))
        await answers_or_refuses(lambda: uow.gauges.get_many(ids))
