"""Contract: offset pages and keyset cursor pages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from keel import ConfigurationError, CursorPage, Page, ValidationError
from keel.infrastructure.repository import Eq
from keel.infrastructure.repository._sorting import sort_keys
from keel.infrastructure.repository.cursor import CursorState, default_cursor_secret, encode_cursor, fingerprint
from tests.contract.models import Item, Note
from tests.support.seeding import seed

NewUow = Callable[[], Any]

#: (name, category, rank): duplicate and NULL sort values on purpose.
ROWS = [
    ("a", "x", 3),
    ("b", "y", None),
    ("c", "x", 1),
    ("d", "x", 3),
    ("e", None, 2),
    ("f", "y", None),
    ("g", "x", 1),
]


@pytest.fixture
async def seeded(new_uow: NewUow) -> None:
    await seed(new_uow(), items=(Item(name=n, category=c, rank=r) for n, c, r in ROWS))


def expected(order: list[tuple[str, bool]], rows: list[tuple[str, str | None, int | None]] = ROWS) -> list[str]:
    """The names in keel's order: NULL greatest, the id (insertion order) breaking ties in the last key's direction."""
    index = {"name": 0, "category": 1, "rank": 2}
    result = list(enumerate(rows))
    result.sort(key=lambda r: r[0], reverse=order[-1][1])
    for field, descending in reversed(order):
        i = index[field]
        result.sort(key=lambda r: (r[1][i] is None, r[1][i] if r[1][i] is not None else 0), reverse=descending)
    return [r[1][0] for r in result]


async def walk(uow: Any, size: int, order_by: Any, **kwargs: Any) -> tuple[list[list[str]], list[list[str]]]:
    """Every page forward from the start, then every page backward from the last."""
    forward: list[list[str]] = []
    page = await uow.items.paginate_by_cursor(size=size, order_by=order_by, **kwargs)
    assert not page.has_previous
    forward.append([i.name for i in page])
    while page.has_next:
        page = await uow.items.paginate_by_cursor(size=size, order_by=order_by, cursor=page.next_cursor, **kwargs)
        forward.append([i.name for i in page])
    backward = [[i.name for i in page]]
    while page.has_previous:
        page = await uow.items.paginate_by_cursor(size=size, order_by=order_by, cursor=page.previous_cursor, **kwargs)
        backward.append([i.name for i in page])
    return forward, backward


@pytest.mark.usefixtures("seeded")
async def test_offset_pages_report_total_and_neighbours(new_uow: NewUow) -> None:
    """paginate returns items plus total, pages, has_next and has_previous."""
    async with new_uow() as uow:
        first = await uow.items.paginate(page=1, size=3, order_by="name")
        last = await uow.items.paginate(page=3, size=3, order_by="name")
        beyond = await uow.items.paginate(page=4, size=3, order_by="name")
    assert isinstance(first, Page)
    assert ([i.name for i in first], first.total, first.pages) == (["a", "b", "c"], 7, 3)
    assert (first.has_previous, first.has_next) == (False, True)
    assert ([i.name for i in last], last.has_previous, last.has_next) == (["g"], True, False)
    assert (beyond.items, beyond.total, beyond.has_next) == ([], 7, False)


@pytest.mark.usefixtures("seeded")
async def test_offset_pages_never_overlap_on_duplicate_sort_values(new_uow: NewUow) -> None:
    """The primary key breaks ties, so walking pages sees every row once, NULLs last."""
    async with new_uow() as uow:
        seen = []
        for number in range(1, 5):
            seen += [i.name for i in await uow.items.paginate(page=number, size=2, order_by="rank")]
    assert seen == expected([("rank", False)])


@pytest.mark.usefixtures("seeded")
async def test_offset_pages_apply_filters_to_items_and_total(new_uow: NewUow) -> None:
    """Filters narrow both the items and the total."""
    async with new_uow() as uow:
        page = await uow.items.paginate(Eq("category", "x"), size=2, order_by="-rank")
    assert ([i.name for i in page], page.total, page.pages) == (["d", "a"], 4, 2)


@pytest.mark.parametrize(("page", "size"), [(0, 10), (-1, 10), (1, 0), (1, -5), (1, 1001), ("1", 10), (1, 2.5)])
async def test_bad_page_numbers_and_sizes_are_refused(new_uow: NewUow, page: Any, size: Any) -> None:
    """Page < 1, size < 1 or above the maximum is a ValidationError, never clamped."""
    async with new_uow() as uow:
        with pytest.raises(ValidationError):
            await uow.items.paginate(page=page, size=size)
        if page == 1:
            with pytest.raises(ValidationError):
                await uow.items.paginate_by_cursor(size=size)


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    "order",
    [
        [("name", False)],
        [("rank", False)],
        [("rank", True)],
        [("category", False), ("rank", True)],
        [("category", True), ("rank", False)],
        [("rank", True), ("category", True)],
    ],
    ids=lambda o: ",".join(("-" if d else "") + f for f, d in o),
)
@pytest.mark.parametrize("size", [1, 2, 3, 7, 10])
async def test_cursor_pages_walk_every_row_once_forward_and_backward(
    new_uow: NewUow, order: list[tuple[str, bool]], size: int
) -> None:
    """Forward then backward, pages cover every row exactly once in keel's order, NULLs and ties included."""
    order_by = [("-" if d else "") + f for f, d in order]
    async with new_uow() as uow:
        forward, backward = await walk(uow, size, order_by)
    want = expected(order)
    assert [name for page in forward for name in page] == want
    assert [name for page in reversed(backward) for name in page] == want
    assert all(len(page) == size for page in forward[:-1])
    assert backward[-1] == forward[0]


@pytest.mark.usefixtures("seeded")
async def test_cursor_pages_apply_filters(new_uow: NewUow) -> None:
    """Filters hold on every page of a cursor walk."""
    async with new_uow() as uow:
        forward, _ = await walk(uow, 2, "-rank", category="x")
    assert forward == [["d", "a"], ["g", "c"]]


@pytest.mark.usefixtures("seeded")
async def test_a_cursor_page_has_the_documented_shape(new_uow: NewUow) -> None:
    """CursorPage carries items, size and both cursors; the last page has no next cursor."""
    async with new_uow() as uow:
        page = await uow.items.paginate_by_cursor(size=10, order_by="name")
    assert isinstance(page, CursorPage)
    assert (len(page.items), page.size, page.next_cursor, page.previous_cursor) == (7, 10, None, None)
    assert (page.has_next, page.has_previous) == (False, False)


async def test_cursor_pages_on_an_empty_table_are_empty(new_uow: NewUow) -> None:
    """No rows: one empty page without cursors."""
    async with new_uow() as uow:
        page = await uow.items.paginate_by_cursor(size=5)
    assert (page.items, page.next_cursor, page.previous_cursor) == ([], None, None)


@pytest.mark.usefixtures("seeded")
async def test_a_cursor_is_bound_to_its_ordering_and_filter(new_uow: NewUow) -> None:
    """Reusing a cursor with another order_by, filter or deleted-rows mode is a ValidationError."""
    async with new_uow() as uow:
        page = await uow.items.paginate_by_cursor(size=2, order_by="name", category="x")
        cursor = page.next_cursor
        for other in (
            {"order_by": "-name", "category": "x"},
            {"order_by": "rank", "category": "x"},
            {"order_by": "name", "category": "y"},
            {"order_by": "name"},
            {"order_by": "name", "category": "x", "include_deleted": True},
        ):
            with pytest.raises(ValidationError) as caught:
                await uow.items.paginate_by_cursor(size=2, cursor=cursor, **other)
            assert caught.value.errors[0]["type"] == "invalid_cursor"
        # The same query with another page size is fine: size is not part of the position.
        again = await uow.items.paginate_by_cursor(size=3, order_by="name", category="x", cursor=cursor)
        assert [i.name for i in again] == ["d", "g"]


@pytest.mark.usefixtures("seeded")
async def test_a_tampered_cursor_is_a_validation_error(new_uow: NewUow) -> None:
    """Changing any character of a cursor, or truncating it, is caught by the signature."""
    async with new_uow() as uow:
        cursor = (await uow.items.paginate_by_cursor(size=2, order_by="name")).next_cursor
        assert cursor is not None
        for i in range(0, len(cursor), 7):
            flipped = cursor[:i] + ("A" if cursor[i] != "A" else "B") + cursor[i + 1 :]
            with pytest.raises(ValidationError):
                await uow.items.paginate_by_cursor(size=2, order_by="name", cursor=flipped)
        for broken in (cursor[:-1], cursor[:10], "", "!!!", cursor + "A", "x" * 10_000):
            with pytest.raises(ValidationError):
                await uow.items.paginate_by_cursor(size=2, order_by="name", cursor=broken)


async def test_cursors_carrying_long_sort_values_lead_to_the_next_page(new_uow: NewUow) -> None:
    """A 3,500-character sort value makes a long cursor that keel still accepts: every page is reached."""
    await seed(new_uow(), notes=(Note(id=i, body="x" * 3500 + str(i)) for i in range(1, 6)))
    async with new_uow() as uow:
        page = await uow.notes.paginate_by_cursor(size=2, order_by="body")
        seen = [n.id for n in page]
        while page.has_next:
            page = await uow.notes.paginate_by_cursor(size=2, order_by="body", cursor=page.next_cursor)
            seen += [n.id for n in page]
        assert len(page.previous_cursor) > 4096
    assert seen == [1, 2, 3, 4, 5]


async def test_a_cursor_keel_would_refuse_is_never_issued(new_uow: NewUow) -> None:
    """A sort value too long for any cursor fails when the cursor is made, naming the key, not on the next page."""
    await seed(new_uow(), notes=[Note(id=1, body="y" * 7000), Note(id=2, body="z")])
    async with new_uow() as uow:
        with pytest.raises(ConfigurationError) as caught:
            await uow.notes.paginate_by_cursor(size=1, order_by="body")
        assert caught.value.details["field"] == "body"
        assert [n.id for n in await uow.notes.paginate_by_cursor(size=1, order_by="-body")] == [2]


@pytest.mark.parametrize(
    "values",
    [("abc", 1), (1.5, 1), (datetime(2020, 1, 1), 1), (1, "one")],
    ids=["text-for-int", "fraction-for-int", "datetime-for-int", "text-for-key"],
)
async def test_a_signed_cursor_with_values_of_the_wrong_type_is_a_validation_error(
    new_uow: NewUow, values: tuple[Any, ...]
) -> None:
    """A cursor signed with the right key but carrying values the columns cannot hold is invalid_cursor."""
    await seed(new_uow(), items=(Item(name=n, rank=i) for i, n in enumerate("abc")))
    keys = sort_keys(Item, "rank")
    digest = fingerprint(Item, keys, [], "live")
    token = encode_cursor(CursorState(values, False, digest), default_cursor_secret())
    async with new_uow() as uow:
        with pytest.raises(ValidationError) as caught:
            await uow.items.paginate_by_cursor(order_by="rank", cursor=token)
    assert caught.value.errors[0]["type"] == "invalid_cursor"
