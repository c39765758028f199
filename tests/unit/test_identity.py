"""Primary keys parsed strictly for every key type (issue 7 item 9); the key plan is built once per model."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from keel import ValidationError
from keel.infrastructure.repository._checks import coerce_identity, key_plan
from tests.contract.gauges import Pair
from tests.contract.models import Plain
from tests.unit.test_cursor import Typed


def test_a_text_key_takes_text_or_an_integer_but_not_a_float_or_a_boolean() -> None:
    """An int becomes its decimal text; a float or bool is refused rather than turned into "1.9" or "True"."""
    assert coerce_identity(Plain, "X1") == ("X1",)
    assert coerce_identity(Plain, 7) == ("7",)
    for bad in (1.9, True, b"X1", None, "x" * 21):
        with pytest.raises(ValidationError):
            coerce_identity(Plain, bad)


def test_a_uuid_key_takes_a_uuid_or_its_text() -> None:
    """Text is parsed as a UUID; numbers and junk are ValidationErrors, not AttributeError or ValueError."""
    value = uuid.UUID(int=7)
    assert coerce_identity(Typed, value) == (value,)
    assert coerce_identity(Typed, str(value)) == (value,)
    for bad in (7, 1.5, "not-a-uuid", True, [1]):
        with pytest.raises(ValidationError):
            coerce_identity(Typed, bad)


@pytest.mark.parametrize("bad", [(1,), (1, "a", 2), 1, (1.5, "a"), ("1", None)])
def test_a_composite_key_takes_one_valid_value_per_column(bad: Any) -> None:
    """A tuple of the wrong length or with an unparseable part is a ValidationError."""
    assert coerce_identity(Pair, ("1", "a")) == (1, "a")
    with pytest.raises(ValidationError):
        coerce_identity(Pair, bad)


def test_the_key_plan_is_built_once_per_model() -> None:
    """Repeated gets reuse one plan: the mapper is not inspected per id."""
    assert key_plan(Plain) is key_plan(Plain)
    assert key_plan(Pair).entity == "Pair"
    assert len(key_plan(Pair).columns) == 2
