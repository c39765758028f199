"""Contract: the public query building blocks (``statement=``, ``scalars``, ``one_or_none``, ``mark_seen``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from keel import ConfigurationError, ConflictError, SqlAlchemyRepository, ValidationError
from keel.domain.messages import utcnow
from keel.infrastructure.repository import Eq
from keel.testing import InMemoryRepository
from tests.contract.models import Item, Owner, Tag

NewUow = Callable[[], Any]

#: (name, category, rank)
ROWS = [("a", "x", 3), ("b", "y", 1), ("c", "x", 1), ("d", "x", None), ("e", "x", 2), ("f", "y", 2)]


@pytest.fixture
async def seeded(new_uow: NewUow) -> None:
    async with new_uow() as uow:
        uow.items.add_many(Item(name=n, category=c, rank=r) for n, c, r in ROWS)
        await uow.commit()
    async with new_uow() as uow:
        await uow.items.delete(await uow.items.get_or_none(5))  # "e": soft-deleted
        await uow.commit()


async def test_list_count_exists_and_pages_add_their_rules_to_a_statement(new_uow: NewUow, seeded: None) -> None:
    """statement= is the base query: conditions, keywords, soft delete, sorting and the tie-breaker apply to it."""
    in_x = select(Item).where(Item.category == "x")
    async with new_uow() as uow:
        assert [i.name for i in await uow.items.list(statement=in_x, order_by="name")] == ["a", "c", "d"]
        assert [i.name for i in await uow.items.list(Item.rank > 1, statement=in_x)] == ["a"]
        assert [i.name for i in await uow.items.list(statement=in_x, name="c")] == ["c"]
        assert [i.name for i in await uow.items.list(statement=in_x, order_by="-name", limit=1, offset=1)] == ["c"]
        assert await uow.items.count(statement=in_x) == 3
        assert await uow.items.count(statement=in_x, include_deleted=True) == 4
        assert await uow.items.count(statement=in_x, only_deleted=True) == 1
        assert await uow.items.exists(Eq("name", "d"), statement=in_x)
        assert not await uow.items.exists(statement=in_x, name="b")
        page = await uow.items.paginate(statement=in_x, size=2, order_by="rank")
        assert ([i.name for i in page], page.total, page.pages) == (["c", "a"], 3, 2)
        page = await uow.items.paginate(statement=in_x, page=2, size=2, order_by="rank")
        assert [i.name for i in page] == ["d"]


async def test_a_statement_pages_by_cursor_forward_and_back(new_uow: NewUow, seeded: None) -> None:
    """Keyset pages over a statement walk every row once each way, in keel's order (NULL last)."""
    in_x = select(Item).where(Item.category == "x")
    async with new_uow() as uow:
        first = await uow.items.paginate_by_cursor(statement=in_x, size=2, order_by="rank")
        assert [i.name for i in first] == ["c", "a"]
        second = await uow.items.paginate_by_cursor(statement=in_x, size=2, order_by="rank", cursor=first.next_cursor)
        assert ([i.name for i in second], second.has_next) == (["d"], False)
        back = await uow.items.paginate_by_cursor(
            statement=in_x, size=2, order_by="rank", cursor=second.previous_cursor
        )
        assert [i.name for i in back] == ["c", "a"]


async def test_a_cursor_made_for_one_statement_is_refused_on_another(new_uow: NewUow, seeded: None) -> None:
    """Cursors are bound to their statement: another statement, or none, is a ValidationError."""
    in_x = select(Item).where(Item.category == "x")
    in_y = select(Item).where(Item.category == "y")
    async with new_uow() as uow:
        page = await uow.items.paginate_by_cursor(statement=in_x, size=1, order_by="name")
        for other in ({"statement": in_y}, {}):
            with pytest.raises(ValidationError) as caught:
                await uow.items.paginate_by_cursor(size=1, order_by="name", cursor=page.next_cursor, **other)
            assert caught.value.errors[0]["type"] == "invalid_cursor"
        plain = await uow.items.paginate_by_cursor(size=1, order_by="name")
        with pytest.raises(ValidationError):
            await uow.items.paginate_by_cursor(statement=in_x, size=1, order_by="name", cursor=plain.next_cursor)
        same = select(Item).where(Item.category == "x")  # built again, as the next request does
        again = await uow.items.paginate_by_cursor(statement=same, size=1, order_by="name", cursor=page.next_cursor)
        assert [i.name for i in again] == ["c"]


@pytest.mark.parametrize(
    "shaped",
    [select(Item).order_by(Item.name), select(Item).limit(3), select(Item).offset(1)],
    ids=["order_by", "limit", "offset"],
)
async def test_a_statement_that_orders_or_limits_itself_is_refused(new_uow: NewUow, shaped: Any) -> None:
    """ORDER BY, LIMIT and OFFSET belong to keel's arguments: such a statement is a ConfigurationError."""
    async with new_uow() as uow:
        for call in (
            uow.items.list(statement=shaped),
            uow.items.count(statement=shaped),
            uow.items.paginate(statement=shaped),
            uow.items.paginate_by_cursor(statement=shaped),
        ):
            with pytest.raises(ConfigurationError, match="ORDER BY, LIMIT or OFFSET"):
                await call


@pytest.mark.parametrize(
    "wrong", [select(Owner), select(Item.id), select(Item, Owner), "SELECT * FROM repo_items"], ids=repr
)
async def test_a_statement_of_anything_but_the_model_is_refused(new_uow: NewUow, wrong: Any) -> None:
    """statement= takes a select(Model) of the repository's model only."""
    async with new_uow() as uow:
        with pytest.raises(ConfigurationError, match="statement="):
            await uow.items.list(statement=wrong)
        with pytest.raises(ConfigurationError, match="statement="):
            await uow.items.paginate_by_cursor(statement=wrong)


async def test_scalars_and_one_or_none_run_a_statement_and_mark_entities_seen(new_uow: NewUow, seeded: None) -> None:
    """scalars() returns the entities of a select(Model); one_or_none() one or None; both mark them seen."""
    async with new_uow() as uow:
        found = await uow.items.scalars(uow.items.select(category="x").order_by(Item.name.desc()).limit(2))
        assert [i.name for i in found] == ["d", "c"]
        assert all(i in uow.seen for i in found)
        one = await uow.items.one_or_none(uow.items.select(name="b"))
        assert one is not None
        assert one.name == "b"
        assert one in uow.seen
        assert await uow.items.one_or_none(select(Item).where(Item.name == "zz")) is None
        assert await uow.items.one_or_none(select(Item).where(Item.name == "e")) is None  # soft-deleted
        with pytest.raises(ConflictError, match="more than one"):
            await uow.items.one_or_none(select(Item).where(Item.category == "y"))


async def test_mark_seen_reports_an_entity_to_the_unit_of_work(new_uow: NewUow) -> None:
    """mark_seen(entity) is the repository's public verb for "seen": it reports the entity and returns it."""
    async with new_uow() as uow:
        item = Item(name="built by hand")
        assert item not in uow.seen
        assert uow.items.mark_seen(item) is item
        assert item in uow.seen


async def test_the_old_names_for_seen_and_scalars_still_work_with_a_deprecation_warning(
    new_uow: NewUow, seeded: None
) -> None:
    """_track(), _scalars() and the on_seen= keyword keep working, each with a DeprecationWarning."""
    async with new_uow() as uow:
        item = await uow.items.get(1)
        with pytest.deprecated_call():
            assert uow.items._track(item) is item
        with pytest.deprecated_call():
            assert [i.name for i in await uow.items._scalars(uow.items.select(name="a"))] == ["a"]
        seen: list[object] = []
        store = getattr(uow.items, "workspace", None)
        with pytest.deprecated_call():
            repo: Any = (
                InMemoryRepository(store, model=Item, on_seen=seen.append)
                if store is not None
                else SqlAlchemyRepository(uow.session, model=Item, on_seen=seen.append)
            )
        assert [i.name for i in await repo.list(name="a")] == ["a"]
        assert [getattr(i, "name", None) for i in seen] == ["a"]


# --- joins: SQL only; the twin refuses them ---------------------------------------------


@pytest.fixture
async def tagged(new_uow: NewUow) -> None:
    """Owners o1..o5, each with a "red" tag (o1 two; o4 a "blue" one too); o3's is soft-deleted."""
    async with new_uow() as uow:
        for i in range(1, 6):
            owner = Owner(id=i, name=f"o{i}")
            labels = {1: ["red", "red"], 2: ["red"], 3: ["red"], 4: ["blue", "red"], 5: ["red"]}[i]
            owner.tags = [Tag(label=label) for label in labels]
            uow.owners.add(owner)
        await uow.commit()
    async with new_uow() as uow:
        tag = await uow.session.scalar(select(Tag).where(Tag.owner_id == 3))
        tag.deleted_at = utcnow()
        await uow.commit()


def red_owners() -> Any:
    return select(Owner).join(Owner.tags).where(Tag.label == "red").distinct()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_a_join_statement_pages_by_cursor_once_per_entity(new_uow: NewUow, tagged: None) -> None:
    """A join (one-to-many, made distinct) pages by cursor with counts and pages over entities, not joined rows."""
    async with new_uow() as uow:
        assert await uow.owners.count(statement=red_owners()) == 4
        names: list[str] = []
        page = await uow.owners.paginate_by_cursor(statement=red_owners(), size=3, order_by="-name")
        names += [o.name for o in page]
        while page.has_next:
            page = await uow.owners.paginate_by_cursor(
                statement=red_owners(), size=3, order_by="-name", cursor=page.next_cursor
            )
            names += [o.name for o in page]
        assert names == ["o5", "o4", "o2", "o1"]
        offset_page = await uow.owners.paginate(statement=red_owners(), page=2, size=3, order_by="name")
        assert ([o.name for o in offset_page], offset_page.total) == (["o5"], 4)
        assert all(o in uow.seen for o in await uow.owners.list(statement=red_owners()))


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_soft_deleted_rows_of_a_joined_model_do_not_match(new_uow: NewUow, tagged: None) -> None:
    """The session's soft-delete rule reaches joined models: a soft-deleted tag does not make its owner match."""
    any_tag = select(Owner).join(Owner.tags).distinct()
    async with new_uow() as uow:
        assert sorted(o.name for o in await uow.owners.list(statement=any_tag)) == ["o1", "o2", "o4", "o5"]


@pytest.mark.parametrize("backend", ["memory"])
@pytest.mark.parametrize(
    "joined",
    [
        select(Item).join(Owner, Owner.id == Item.id),
        select(Item).where(Item.id == Owner.id),
        select(Item).group_by(Item.id),
    ],
    ids=["join", "other_table", "group_by"],
)
async def test_the_twin_refuses_a_join_statement_and_points_to_the_sql_tests(new_uow: NewUow, joined: Any) -> None:
    """The in-memory twin cannot run joins: a ConfigurationError naming the SQL fixtures, never a wrong answer."""
    async with new_uow() as uow:
        for call in (uow.items.list(statement=joined), uow.items.scalars(joined), uow.items.count(statement=joined)):
            with pytest.raises(ConfigurationError, match="SQLite/PostgreSQL"):
                await call


class OldStyleItems(SqlAlchemyRepository[Item]):
    """A select() override written before statement= existed."""

    def select(self, *where: Any, include_deleted: bool = False, only_deleted: bool = False, **equals: Any) -> Any:
        return super().select(
            *where, Item.rank.is_not(None), include_deleted=include_deleted, only_deleted=only_deleted, **equals
        )


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_a_select_override_without_statement_keeps_working(new_uow: NewUow, seeded: None) -> None:
    """list, count and both pages call select() without statement= when none is given, as before."""
    async with new_uow() as uow:
        repo = OldStyleItems(uow.session, mark_seen=uow.mark_seen)
        assert [i.name for i in await repo.list(category="x", order_by="name")] == ["a", "c"]
        assert await repo.count() == 4
        assert [i.name for i in await repo.paginate(size=2, order_by="name")] == ["a", "b"]
        assert [i.name for i in await repo.paginate_by_cursor(size=2, order_by="name")] == ["a", "b"]
