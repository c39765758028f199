"""Fuzz: hostile cursors, sort names and query parameters only ever raise ValidationError.

Whatever the string, the repository answers with a page or with keel's
``ValidationError``; never a database error, a decoding crash or SQL built
from the input.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import partial
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from keel import CursorPage, ValidationError, filters_from_query
from tests.property.models import Row

NewUow = Callable[[], Any]

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
nasty_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        ["a; DROP TABLE repo_walk_rows", "-", "--a", "a.b", "__class__", "id\x00", "\uff41", "' OR 1=1 --"]
    ),
)
b64_junk = st.binary(max_size=120).map(lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode())


async def seed(new_uow: NewUow) -> str:
    """Three rows; returns a valid cursor to mutate."""
    async with new_uow() as uow:
        if await uow.rows.count() == 0:
            uow.rows.add_many([Row(a=1, b=None, c="x"), Row(a=None, b=2, c=None), Row(a=3, b=3, c="y")])
            await uow.commit()
        page: CursorPage[Row] = await uow.rows.paginate_by_cursor(size=1, order_by=["a", "-c"])
    assert page.next_cursor is not None
    return page.next_cursor


async def only_validation_errors(call: Callable[[], Any]) -> None:
    """Run ``call``; success and keel's ValidationError (with structured errors) are the only outcomes."""
    error: ValidationError | None = None
    try:
        await call()
    except ValidationError as exc:
        error = exc
    if error is not None:
        assert error.code == "validation_error"
        assert error.errors


@FUZZ
@given(junk=st.one_of(nasty_text, b64_junk), position=st.integers(0, 200), replacement=st.characters())
@example(junk="", position=0, replacement="A")
async def test_fuzzed_cursors_only_raise_validation_errors(
    new_uow: NewUow, junk: str, position: int, replacement: str
) -> None:
    """Random strings, random base64 and single-character edits of a real cursor are refused cleanly."""
    valid = await seed(new_uow)
    edited = valid[: position % len(valid)] + replacement + valid[position % len(valid) + 1 :]
    async with new_uow() as uow:
        for cursor in (junk, edited, valid + junk):
            await only_validation_errors(
                partial(uow.rows.paginate_by_cursor, size=1, order_by=["a", "-c"], cursor=cursor)
            )


@FUZZ
@given(names=st.lists(nasty_text, min_size=1, max_size=3))
async def test_fuzzed_sort_names_only_raise_validation_errors(new_uow: NewUow, names: list[str]) -> None:
    """order_by strings that are not columns are ValidationErrors on list, paginate and cursor pages."""
    await seed(new_uow)
    async with new_uow() as uow:
        await only_validation_errors(lambda: uow.rows.list(order_by=names))
        await only_validation_errors(lambda: uow.rows.paginate(order_by=names))
        await only_validation_errors(lambda: uow.rows.paginate_by_cursor(order_by=names))


@FUZZ
@given(params=st.dictionaries(nasty_text, st.one_of(nasty_text, st.lists(nasty_text, max_size=3)), max_size=3))
@example(params={"a__gte": "x", "c__contains": "%_\\", "b__in": ",,", "n__isnull": "true"})
@example(params={"a__gte": "99999999999999999999"})
@example(params={"a": "-2147483649"})
@example(params={"c": "a\x00b"})
@example(params={"c__contains": "\ud800"})
async def test_fuzzed_query_parameters_only_raise_validation_errors(new_uow: NewUow, params: dict[str, Any]) -> None:
    """Random filter parameters either filter or are refused with ValidationError."""
    await seed(new_uow)

    async def run() -> None:
        filters = filters_from_query(Row, params)
        async with new_uow() as uow:
            await uow.rows.list(*filters)
            await uow.rows.paginate_by_cursor(*filters, size=2)

    await only_validation_errors(run)
