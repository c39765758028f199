"""Property: cursor pages walk every row exactly once, forward and backward, in keel's order.

Random rows with duplicate and NULL sort keys, random sort columns in random
directions, random page sizes. The expected order comes from an independent
oracle (stable multi-pass sort), not from keel's own comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from tests.property.models import Row

NewUow = Callable[[], Any]

values = st.one_of(st.none(), st.integers(0, 3))
texts = st.one_of(st.none(), st.sampled_from(["", "a", "ab", "b"]))
rows_strategy = st.lists(st.tuples(values, values, texts), max_size=25)
order_strategy = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans()), min_size=1, max_size=3, unique_by=lambda t: t[0]
)
WALK = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def oracle(rows: list[Row], order: list[tuple[str, bool]]) -> list[int]:
    """Ids in keel's order: NULL greatest; id breaks ties in the last key's direction."""
    result = sorted(rows, key=lambda r: r.id, reverse=order[-1][1])
    for field, descending in reversed(order):

        def key(row: Row, field: str = field) -> tuple[bool, Any]:
            value = getattr(row, field)
            return (value is None, value or (0 if field != "c" else ""))

        result.sort(key=key, reverse=descending)
    return [r.id for r in result]


async def replace_rows(new_uow: NewUow, data: list[tuple[Any, Any, Any]]) -> list[Row]:
    async with new_uow() as uow:
        if hasattr(uow, "session"):
            await uow.session.execute(delete(Row))
        else:
            for row in await uow.rows.list(include_deleted=True):
                await uow.rows.hard_delete(row)
        rows: list[Row] = uow.rows.add_many(Row(a=a, b=b, c=c) for a, b, c in data)
        await uow.commit()
    return rows


@WALK
@given(data=rows_strategy, order=order_strategy, size=st.integers(1, 6))
async def test_cursor_walk_sees_every_row_once_in_order_both_ways(
    new_uow: NewUow, data: list[tuple[Any, Any, Any]], order: list[tuple[str, bool]], size: int
) -> None:
    """Forward pages concatenate to the oracle's order; backward pages to its reverse; no row twice."""
    rows = await replace_rows(new_uow, data)
    order_by = [("-" if descending else "") + field for field, descending in order]
    expected = oracle(rows, order)
    async with new_uow() as uow:
        pages = [await uow.rows.paginate_by_cursor(size=size, order_by=order_by)]
        while pages[-1].has_next:
            pages.append(await uow.rows.paginate_by_cursor(size=size, order_by=order_by, cursor=pages[-1].next_cursor))
        forward = [[r.id for r in p] for p in pages]
        back = [pages[-1]]
        while back[-1].has_previous:
            back.append(
                await uow.rows.paginate_by_cursor(size=size, order_by=order_by, cursor=back[-1].previous_cursor)
            )
        backward = [[r.id for r in p] for p in back]
    assert [i for page in forward for i in page] == expected
    assert [i for page in reversed(backward) for i in page] == expected
    assert all(len(page) == size for page in forward[:-1])
    assert all(len(page) == size for page in backward[1:])
    assert not pages[0].has_previous
