"""How `keel events` finds projections from KEEL_EVENT_STORE__PROJECTIONS entries, and what it refuses."""

from __future__ import annotations

import pytest

from keel import ConfigurationError
from keel.config import EventStoreSettings
from keel.event_store import Projection
from keel.infrastructure.event_store._loading import load_projections
from keel.infrastructure.event_store._projection import check_projections
from tests.contract.projection_models import DepositsOnly, LedgerProjection

#: Entries naming attributes of this module.
HERE = __name__
SINGLE = LedgerProjection(name="single")
MANY = (LedgerProjection(name="first"), [LedgerProjection(name="second")])
NOT_ONE = 42


def test_an_entry_may_name_an_instance_a_subclass_or_nested_lists() -> None:
    """Instances are used as they are, classes built without arguments, lists and tuples flattened."""
    found = load_projections([f"{HERE}:SINGLE", f"{HERE}:MANY", "tests.contract.projection_models:DepositsOnly"])
    assert [p.name for p in found] == ["single", "first", "second", "deposits"]
    assert isinstance(found[-1], DepositsOnly)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon", "is not `module:attribute`"),
        ("keel_no_such_module:X", "cannot load projections"),
        (f"{HERE}:MISSING", "cannot load projections"),
        (f"{HERE}:NOT_ONE", "is int, not a Projection"),
    ],
)
def test_bad_entries_are_configuration_errors_naming_the_entry(spec: str, message: str) -> None:
    """A malformed, unimportable or wrong-typed entry is a ConfigurationError naming the variable."""
    with pytest.raises(ConfigurationError, match=message) as refused:
        load_projections([spec])
    assert refused.value.details["variables"] == ["KEEL_EVENT_STORE__PROJECTIONS"]


def test_projections_need_a_name_and_must_be_projections() -> None:
    """A projection without a name, or something else in the list, is refused before anything runs."""

    class Nameless(Projection):
        pass

    with pytest.raises(ConfigurationError, match="needs a `name`"):
        check_projections([Nameless()])
    with pytest.raises(ConfigurationError, match=r"is not a keel\.event_store\.Projection"):
        check_projections([object()])  # type: ignore[list-item]


def test_the_setting_takes_a_comma_separated_string_or_a_json_list() -> None:
    """`a:b, c:d` and `["a:b"]` both read as lists of entries."""
    assert EventStoreSettings(projections="a:b, c:d").projections == ["a:b", "c:d"]
    assert EventStoreSettings(projections='["a:b"]').projections == ["a:b"]
