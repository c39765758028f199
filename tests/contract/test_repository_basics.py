"""Contract: adding, getting, listing, filtering, sorting and counting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from keel import ConflictError, Eq, In, IsNull, Like, Ne, NotFoundError, Range, ValidationError
from tests.contract.models import Item, Plain
from tests.support import seeding

NewUow = Callable[[], Any]


async def seed(new_uow: NewUow, *rows: tuple[str, str | None, int | None]) -> list[int]:
    uow = new_uow()
    async with uow:
        items = uow.items.add_many(Item(name=n, category=c, rank=r) for n, c, r in rows)
        await uow.commit()
    return [item.id for item in items]


async def names(new_uow: NewUow, *where: Any, **kwargs: Any) -> list[str]:
    async with new_uow() as uow:
        return [item.name for item in await uow.items.list(*where, **kwargs)]


async def test_added_entity_is_readable_after_commit_with_keel_columns(new_uow: NewUow) -> None:
    """Commit stores the entity; a new unit of work reads it with version 1 and UTC timestamps."""
    (item_id,) = await seed(new_uow, ("lamp", None, None))
    async with new_uow() as uow:
        item = await uow.items.get(item_id)
    assert (item.name, item.version, item.deleted_at) == ("lamp", 1, None)
    assert item.created_at.utcoffset().total_seconds() == 0
    assert item.updated_at >= item.created_at


async def test_get_of_a_missing_id_raises_not_found_and_get_or_none_returns_none(new_uow: NewUow) -> None:
    """get raises NotFoundError naming the entity; get_or_none gives None."""
    async with new_uow() as uow:
        with pytest.raises(NotFoundError) as caught:
            await uow.items.get(404)
        assert await uow.items.get_or_none(404) is None
    assert caught.value.entity == "Item"
    assert caught.value.id == 404


async def test_get_with_an_id_of_the_wrong_type_is_a_validation_error(new_uow: NewUow) -> None:
    """An id that cannot be the key's type is refused before any query."""
    async with new_uow() as uow:
        with pytest.raises(ValidationError):
            await uow.items.get("not-a-number")
        with pytest.raises(ValidationError):
            await uow.items.get(2**63)
        with pytest.raises(ValidationError):
            await uow.plain.get("nul\x00")
        assert await uow.items.get_or_none("7") is None


async def test_get_many_keeps_the_order_asked_and_skips_missing(new_uow: NewUow) -> None:
    """get_many returns found entities in request order, without duplicates."""
    a, _, c = await seed(new_uow, ("a", None, None), ("b", None, None), ("c", None, None))
    async with new_uow() as uow:
        found = await uow.items.get_many([c, 999, a, c])
    assert [i.name for i in found] == ["c", "a"]


async def test_adding_an_existing_key_is_a_conflict_on_commit(new_uow: NewUow) -> None:
    """A second new entity with a taken primary key fails the commit with ConflictError."""
    await seeding.seed(new_uow(), plain=[Plain(code="X", qty=1)])
    async with new_uow() as uow:
        uow.plain.add(Plain(code="X", qty=2))
        with pytest.raises(ConflictError):
            await uow.commit()
    async with new_uow() as uow:
        assert (await uow.plain.get("X")).qty == 1


async def test_list_filters_by_expressions_keywords_and_filter_objects(new_uow: NewUow) -> None:
    """Expressions, field=value keywords and filter objects all narrow the list, combined with AND."""
    await seed(new_uow, ("lamp", "home", 3), ("desk", "office", 1), ("chair", "office", None), ("rug", None, 2))
    assert await names(new_uow, Item.rank > 1, order_by="name") == ["lamp", "rug"]
    assert await names(new_uow, category="office", order_by="name") == ["chair", "desk"]
    assert await names(new_uow, category=None) == ["rug"]
    assert await names(new_uow, Eq("category", "office"), Range("rank", ge=1)) == ["desk"]
    assert await names(new_uow, Ne("category", "office"), order_by="name") == ["lamp", "rug"]
    assert await names(new_uow, In("name", ["rug", "desk", "nope"]), order_by="name") == ["desk", "rug"]
    assert await names(new_uow, In("category", ["office"], negate=True), order_by="name") == ["lamp"]
    assert await names(new_uow, IsNull("rank")) == ["chair"]
    assert await names(new_uow, IsNull("rank", is_null=False), order_by="name") == ["desk", "lamp", "rug"]
    assert await names(new_uow, Range("rank", gt=1, le=3), order_by="-rank") == ["lamp", "rug"]
    assert await names(new_uow, Like("name", "a"), order_by="name") == ["chair", "lamp"]
    assert await names(new_uow, Like("name", "CH", mode="startswith", case_sensitive=False)) == ["chair"]


async def test_like_filters_match_percent_and_underscore_literally(new_uow: NewUow) -> None:
    """A Like value's % and _ are text, not wildcards."""
    await seed(new_uow, ("50% off", None, None), ("500 off", None, None), ("a_b", None, None), ("axb", None, None))
    assert await names(new_uow, Like("name", "50%")) == ["50% off"]
    assert await names(new_uow, Like("name", "a_b", mode="exact")) == ["a_b"]
    assert await names(new_uow, Like("name", "\\")) == []


async def test_in_with_null_among_the_values_follows_sql_three_valued_logic(new_uow: NewUow) -> None:
    """IN (1, NULL) matches rank 1 only; NOT IN (1, NULL) matches nothing, on every implementation."""
    await seed(new_uow, ("a", None, 1), ("b", None, 2), ("n", None, None))
    assert await names(new_uow, In("rank", [1, None])) == ["a"]
    assert await names(new_uow, In("rank", [1, None], negate=True)) == []
    assert await names(new_uow, Item.rank.not_in([1, None])) == []
    assert await names(new_uow, In("rank", [1], negate=True)) == ["b"]


async def test_case_sensitive_like_tells_case_apart_on_every_backend(new_uow: NewUow) -> None:
    """Like(case_sensitive=True) matches exact case on SQLite too; GLOB's * ? [ in the value are text."""
    await seed(new_uow, *((n, None, None) for n in ("Lamp", "lamp", "LAMP post", "a*b", "a[b]", "a?c", "abc")))
    assert await names(new_uow, Like("name", "lamp")) == ["lamp"]
    assert await names(new_uow, Like("name", "LAMP", mode="startswith")) == ["LAMP post"]
    assert await names(new_uow, Like("name", "lamp", case_sensitive=False), order_by="name") == [
        "LAMP post",
        "Lamp",
        "lamp",
    ]
    assert await names(new_uow, Like("name", "*")) == ["a*b"]
    assert await names(new_uow, Like("name", "a[b", mode="startswith")) == ["a[b]"]
    assert await names(new_uow, Like("name", "a?c", mode="exact")) == ["a?c"]
    async with new_uow() as uow:
        assert await uow.items.count(~Like("name", "lamp").to_expression(Item)) == 6


async def test_filter_values_are_converted_to_the_column_type_or_refused(new_uow: NewUow) -> None:
    """ "2" matches an integer column; "two" is a ValidationError naming the field."""
    await seed(new_uow, ("lamp", None, 2))
    assert await names(new_uow, Eq("rank", "2")) == ["lamp"]
    async with new_uow() as uow:
        with pytest.raises(ValidationError) as caught:
            await uow.items.list(Eq("rank", "two"))
        assert caught.value.errors[0]["loc"] == ["filter", "rank"]
        with pytest.raises(ValidationError):
            await uow.items.list(Like("rank", "2"))


@pytest.mark.parametrize(
    "extreme",
    [Range("created_at", ge="9999-12-31T23:00:00-05:00"), Eq("created_at", "0001-01-01T00:00:00+05:00")],
    ids=["after-9999-in-utc", "before-year-1-in-utc"],
)
async def test_datetimes_that_overflow_in_utc_are_validation_errors(new_uow: NewUow, extreme: Any) -> None:
    """A datetime whose offset pushes it outside years 1..9999 once in UTC is refused, never sent."""
    await seed(new_uow, ("lamp", None, 1))
    async with new_uow() as uow:
        with pytest.raises(ValidationError) as caught:
            await uow.items.count(extreme)
        assert caught.value.errors[0]["loc"] == ["filter", "created_at"]
        assert await uow.items.count(Range("created_at", ge="9999-12-31T23:00:00+00:00")) == 0


async def test_in_filters_take_at_most_a_thousand_values(new_uow: NewUow) -> None:
    """1,000 values are fine on every backend; 1,001 is a ValidationError, not a driver's parameter limit."""
    await seed(new_uow, ("lamp", None, 1))
    async with new_uow() as uow:
        assert await uow.items.count(In("id", list(range(1000)))) == 1
        with pytest.raises(ValidationError) as caught:
            await uow.items.count(In("id", list(range(40_000))))
        assert caught.value.details["maximum"] == 1000
        with pytest.raises(ValidationError):
            await uow.items.count(In("id", 5))  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [{"nope": 1}, {"order_by": "nope"}, {"order_by": "-"}, {"order_by": ["name", "x"]}])
async def test_unknown_field_names_are_validation_errors(new_uow: NewUow, bad: dict[str, Any]) -> None:
    """Unknown keyword fields and sort names are refused with ValidationError, never SQL."""
    async with new_uow() as uow:
        with pytest.raises(ValidationError):
            await uow.items.list(**bad)


async def test_order_by_puts_nulls_last_ascending_and_first_descending(new_uow: NewUow) -> None:
    """NULL sorts as the greatest value on every implementation."""
    await seed(new_uow, ("b", None, 2), ("n", None, None), ("a", None, 1))
    assert await names(new_uow, order_by="rank") == ["a", "b", "n"]
    assert await names(new_uow, order_by="-rank") == ["n", "b", "a"]
    assert await names(new_uow, order_by=[Item.rank.desc(), "name"]) == ["n", "b", "a"]


async def test_list_applies_limit_and_offset_after_ordering(new_uow: NewUow) -> None:
    """limit/offset slice the ordered result; a negative limit is refused."""
    await seed(new_uow, *[(f"n{i}", None, i) for i in range(5)])
    assert await names(new_uow, order_by="-rank", limit=2, offset=1) == ["n3", "n2"]
    async with new_uow() as uow:
        with pytest.raises(ValidationError):
            await uow.items.list(limit=-1)


async def test_count_and_exists_apply_the_same_filters(new_uow: NewUow) -> None:
    """count and exists agree with list."""
    await seed(new_uow, ("a", "x", 1), ("b", "x", 2), ("c", "y", 3))
    async with new_uow() as uow:
        assert await uow.items.count() == 3
        assert await uow.items.count(category="x") == 2
        assert await uow.items.count(Item.rank > 5) == 0
        assert await uow.items.exists(Like("name", "c"))
        assert not await uow.items.exists(category="z")


async def test_custom_repository_methods_run_on_every_implementation(new_uow: NewUow) -> None:
    """A subclass query built on the public surface works on the in-memory twin too."""
    await seed(new_uow, ("b", None, 2), ("n", None, None), ("a", None, 1))
    async with new_uow() as uow:
        assert [i.name for i in await uow.items.ranked()] == ["a", "b"]


async def test_reads_see_uncommitted_changes_of_the_same_unit_of_work(new_uow: NewUow) -> None:
    """Queries inside a unit of work see its own pending adds and changes."""
    (item_id,) = await seed(new_uow, ("a", None, 1))
    async with new_uow() as uow:
        uow.items.add(Item(name="b", rank=2))
        (await uow.items.get(item_id)).rank = 10
        assert await uow.items.count() == 2
        assert [i.name for i in await uow.items.list(Item.rank > 5)] == ["a"]
    async with new_uow() as uow:
        assert await uow.items.count() == 1


async def test_wrong_entity_type_is_refused(new_uow: NewUow) -> None:
    """Adding an entity of another model is a ValidationError."""
    async with new_uow() as uow:
        with pytest.raises(ValidationError):
            uow.items.add(Plain(code="x"))
