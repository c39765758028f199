"""Contract: soft delete hides rows from every read path unless asked for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from keel import NotFoundError, ValidationError
from tests.contract.models import Item, Plain
from tests.support.seeding import seed

NewUow = Callable[[], Any]


@pytest.fixture
async def deleted_id(new_uow: NewUow) -> int:
    """Three items, the middle one ("b") soft-deleted."""
    items = await seed(new_uow(), items=(Item(name=n, rank=i) for i, n in enumerate("abc")))
    async with new_uow() as uow:
        await uow.items.delete(await uow.items.get(items[1].id))
        await uow.commit()
    return int(items[1].id)


async def test_delete_sets_deleted_at_and_moves_version_and_updated_at(new_uow: NewUow) -> None:
    """A soft delete is a change: deleted_at set, version + 1, updated_at later."""
    [item] = await seed(new_uow(), items=[Item(name="a")])
    before = item.updated_at
    async with new_uow() as uow:
        await uow.items.delete(await uow.items.get(item.id))
        await uow.commit()
    async with new_uow() as uow:
        gone = await uow.items.get(item.id, include_deleted=True)
    assert gone.deleted_at is not None
    assert gone.is_deleted
    assert gone.version == 2
    assert gone.updated_at > before


async def test_get_of_a_deleted_row_is_not_found_unless_included(new_uow: NewUow, deleted_id: int) -> None:
    """get raises NotFoundError, get_or_none gives None; include_deleted=True returns it."""
    async with new_uow() as uow:
        with pytest.raises(NotFoundError):
            await uow.items.get(deleted_id)
        assert await uow.items.get_or_none(deleted_id) is None
        assert (await uow.items.get(deleted_id, include_deleted=True)).name == "b"


async def test_get_many_hides_deleted_rows(new_uow: NewUow, deleted_id: int) -> None:
    """get_many skips soft-deleted rows unless include_deleted=True."""
    async with new_uow() as uow:
        assert await uow.items.get_many([deleted_id]) == []
        assert [i.name for i in await uow.items.get_many([deleted_id], include_deleted=True)] == ["b"]


async def test_list_hides_deleted_rows_and_can_include_or_isolate_them(new_uow: NewUow, deleted_id: int) -> None:
    """list: live rows by default, all with include_deleted, deleted ones with only_deleted."""
    async with new_uow() as uow:
        assert [i.name for i in await uow.items.list(order_by="name")] == ["a", "c"]
        assert [i.name for i in await uow.items.list(order_by="name", include_deleted=True)] == ["a", "b", "c"]
        assert [i.name for i in await uow.items.list(only_deleted=True)] == ["b"]


async def test_count_and_exists_ignore_deleted_rows(new_uow: NewUow, deleted_id: int) -> None:
    """count and exists see live rows only unless told otherwise."""
    async with new_uow() as uow:
        assert await uow.items.count() == 2
        assert await uow.items.count(include_deleted=True) == 3
        assert await uow.items.count(only_deleted=True) == 1
        assert not await uow.items.exists(name="b")
        assert await uow.items.exists(name="b", include_deleted=True)


async def test_offset_pages_hide_deleted_rows(new_uow: NewUow, deleted_id: int) -> None:
    """paginate's items and total leave deleted rows out."""
    async with new_uow() as uow:
        page = await uow.items.paginate(size=10, order_by="name")
        assert ([i.name for i in page], page.total) == (["a", "c"], 2)
        page = await uow.items.paginate(size=10, order_by="name", only_deleted=True)
        assert ([i.name for i in page], page.total) == (["b"], 1)


async def test_cursor_pages_hide_deleted_rows(new_uow: NewUow, deleted_id: int) -> None:
    """paginate_by_cursor walks live rows only."""
    async with new_uow() as uow:
        first = await uow.items.paginate_by_cursor(size=1, order_by="name")
        second = await uow.items.paginate_by_cursor(size=1, order_by="name", cursor=first.next_cursor)
        assert [i.name for i in first] + [i.name for i in second] == ["a", "c"]
        assert not second.has_next
        everything = await uow.items.paginate_by_cursor(size=5, order_by="name", include_deleted=True)
        assert [i.name for i in everything] == ["a", "b", "c"]


async def test_a_row_deleted_in_this_unit_of_work_is_hidden_at_once(new_uow: NewUow, deleted_id: int) -> None:
    """Reads after delete() in the same unit of work already leave the row out."""
    async with new_uow() as uow:
        await uow.items.delete((await uow.items.list(name="a"))[0])
        assert [i.name for i in await uow.items.list()] == ["c"]


async def test_restore_brings_a_row_back(new_uow: NewUow, deleted_id: int) -> None:
    """restore() clears deleted_at; the row reads normally after commit."""
    async with new_uow() as uow:
        await uow.items.restore(await uow.items.get(deleted_id, include_deleted=True))
        await uow.commit()
    async with new_uow() as uow:
        item = await uow.items.get(deleted_id)
    assert (item.deleted_at, item.version) == (None, 3)


async def test_hard_delete_removes_the_row_for_good(new_uow: NewUow, deleted_id: int) -> None:
    """hard_delete leaves nothing, not even for include_deleted."""
    async with new_uow() as uow:
        await uow.items.hard_delete(await uow.items.get(deleted_id, include_deleted=True))
        await uow.commit()
    async with new_uow() as uow:
        assert await uow.items.get_or_none(deleted_id, include_deleted=True) is None
        assert await uow.items.count(include_deleted=True) == 2


async def test_a_row_hard_deleted_in_this_unit_of_work_is_gone_at_once(new_uow: NewUow) -> None:
    """Before any flush, get/get_or_none/get_many of a hard-deleted row find nothing, include_deleted or not."""
    await seed(new_uow(), items=[Item(id=1, name="a")], plain=[Plain(code="x")])
    async with new_uow() as uow:
        item, plain = await uow.items.get(1), await uow.plain.get("x")
        await uow.items.hard_delete(item)
        await uow.plain.delete(plain)
        assert await uow.items.get_or_none(1) is None
        assert await uow.items.get_or_none(1, include_deleted=True) is None
        assert await uow.plain.get_or_none("x") is None
        with pytest.raises(NotFoundError):
            await uow.items.get(1)
        assert await uow.items.get_many([1]) == []
        assert await uow.items.count(include_deleted=True) == 0


async def test_delete_on_a_model_without_soft_delete_removes_the_row(new_uow: NewUow) -> None:
    """Models without deleted_at are deleted for good; restore is refused."""
    await seed(new_uow(), plain=[Plain(code="x")])
    async with new_uow() as uow:
        row = await uow.plain.get("x")
        with pytest.raises(ValidationError):
            await uow.plain.restore(row)
        await uow.plain.delete(row)
        await uow.commit()
    async with new_uow() as uow:
        assert await uow.plain.count() == 0


async def test_imperatively_mapped_classes_soft_delete_too(new_uow: NewUow) -> None:
    """A pure domain class with soft_delete_column() behaves like the mixin."""
    from tests.contract.models import Document

    await seed(new_uow(), documents=[Document("d1", "spec")])
    async with new_uow() as uow:
        await uow.documents.delete(await uow.documents.get("d1"))
        await uow.commit()
    async with new_uow() as uow:
        assert await uow.documents.list() == []
        assert (await uow.documents.get("d1", include_deleted=True)).version == 2
