"""Declarative filters and their construction from query parameters."""

from __future__ import annotations

from typing import Any

import pytest

from keel import Eq, In, IsNull, Like, Ne, Range, ValidationError, filters_from_query
from keel.infrastructure.repository import escape_like
from keel.testing import InMemoryRepository
from tests.contract.models import Item


def sql(condition: Any) -> str:
    return str(condition.compile(compile_kwargs={"literal_binds": True}))


def test_query_parameters_become_typed_filters() -> None:
    """Suffixes map to filter objects; values stay strings until checked against the column."""
    filters = filters_from_query(
        Item,
        {
            "category": "x",
            "rank__gte": "2",
            "rank__lt": "9",
            "name__icontains": "50%",
            "id__in": "1,2,3",
            "category__isnull": "false",
            "name__ne": "b",
            "page": "3",
        },
    )
    assert filters == [
        Eq("category", "x"),
        Range("rank", ge="2"),
        Range("rank", lt="9"),
        Like("name", "50%", mode="contains", case_sensitive=False),
        In("id", ["1", "2", "3"]),
        IsNull("category", is_null=False),
        Ne("name", "b"),
    ]


def test_a_repeated_parameter_means_membership() -> None:
    """?category=x&category=y (a list value) becomes an IN filter."""
    assert filters_from_query(Item, {"category": ["x", "y"]}) == [In("category", ["x", "y"])]


@pytest.mark.parametrize(
    "params",
    [{"nope": "1"}, {"rank__between": "1"}, {"rank__gte__x": "1"}, {"version": "1"}, {"category__isnull": "maybe"}],
)
def test_unknown_or_disallowed_parameters_are_validation_errors(params: dict[str, str]) -> None:
    """Misspelt fields, unknown suffixes and fields outside `allowed` are refused, not ignored."""
    with pytest.raises(ValidationError):
        filters_from_query(Item, params, allowed={"name", "rank", "category"})


def test_filters_render_bound_values_only() -> None:
    """User values never become SQL text: they are bound parameters with wildcards escaped."""
    condition = Like("name", "50%_'; DROP TABLE x; --").to_expression(Item)
    compiled = condition.compile()
    assert "DROP" not in str(compiled)
    assert list(compiled.params.values()) == ["%50\\%\\_'; DROP TABLE x; --%"]
    assert sql(Range("rank", gt="1", le=5).to_expression(Item)) == "repo_items.rank > 1 AND repo_items.rank <= 5"
    assert sql(Ne("category", "x").to_expression(Item)) == "repo_items.category IS DISTINCT FROM 'x'"


def test_escape_like_escapes_wildcards_and_the_escape_character() -> None:
    """%, _ and backslash are escaped so they match themselves."""
    assert escape_like(r"50%_\x") == r"50\%\_\\x"


@pytest.mark.parametrize(
    "bad",
    [
        Range("rank"),
        In("rank", "1,2"),
        Like("name", 5),  # type: ignore[arg-type]
        Like("name", "x", mode="regex"),  # type: ignore[arg-type]
        Eq("rank", "ten"),
        Range("created_at", ge="yesterday"),
        Eq("unknown", 1),
    ],
    ids=repr,
)
def test_invalid_filters_are_validation_errors(bad: Any) -> None:
    """Empty ranges, wrong shapes, bad values and unknown fields fail before any query."""
    with pytest.raises(ValidationError):
        bad.to_expression(Item)


async def test_filters_from_query_run_on_a_repository() -> None:
    """Filters built from query strings select the expected rows (in-memory twin, same semantics as SQL)."""
    repo = InMemoryRepository(model=Item)
    repo.store.add(Item(name="a", rank=1), Item(name="b", rank=5), Item(name="c", rank=None, category="z"))
    filters = filters_from_query(Item, {"rank__gte": "2", "name__in": "a,b,c"})
    assert [i.name for i in await repo.list(*filters)] == ["b"]
    filters = filters_from_query(Item, {"rank__isnull": "1"})
    assert [i.name for i in await repo.list(*filters)] == ["c"]


def test_datetime_filters_need_an_offset() -> None:
    """ "2024-05-01T00:00:00Z" is accepted; a naive timestamp is refused rather than guessed."""
    assert Range("created_at", ge="2024-05-01T00:00:00Z").to_expression(Item) is not None
    with pytest.raises(ValidationError, match="UTC offset"):
        Range("created_at", ge="2024-05-01T00:00:00").to_expression(Item)


@pytest.mark.parametrize(
    "bad",
    [Eq("rank", 2**31), Eq("rank", -(2**31) - 1), Eq("name", "a\x00b"), Like("name", "\ud800"), In("id", [2**40])],
    ids=["int-max", "int-min", "nul", "surrogate", "in-range"],
)
def test_values_no_database_could_store_are_validation_errors(bad: Any) -> None:
    """Out-of-range integers and text PostgreSQL would refuse fail as ValidationError, not as driver errors."""
    with pytest.raises(ValidationError):
        bad.to_expression(Item)


def test_a_huge_in_list_from_a_query_string_is_refused() -> None:
    """id__in with 40,000 values is a ValidationError when built, before any statement."""
    (built,) = filters_from_query(Item, {"id__in": ",".join(str(i) for i in range(40_000))})
    with pytest.raises(ValidationError) as caught:
        built.to_expression(Item)
    assert caught.value.errors[0]["loc"] == ["filter", "id"]


def test_the_in_limit_is_adjustable(monkeypatch: pytest.MonkeyPatch) -> None:
    """In.max_values is the one knob: raising it admits longer lists."""
    monkeypatch.setattr(In, "max_values", 5)
    with pytest.raises(ValidationError):
        In("id", [1, 2, 3, 4, 5, 6]).to_expression(Item)
    assert "IN" in sql(In("id", [1, 2, 3, 4, 5]).to_expression(Item))
