"""Contract: correctly signed cursors with hostile values are ValidationErrors everywhere (issue 7 item 11).

The development secret is public, so anyone can sign a cursor with it; its
values must be checked as strictly as query parameters: of the sort
column's own type, in its range, and never deeply nested.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from keel import ValidationError
from keel.infrastructure.repository.cursor import _mac, default_cursor_secret
from tests.contract.gauges import Gauge, gauge_uow_factory
from tests.support.seeding import seed

NewUow = Callable[[], Any]


@pytest.fixture
def new_uow(backend: str, request: pytest.FixtureRequest) -> NewUow:
    return gauge_uow_factory(backend, request)


def sign(payload: bytes) -> str:
    """A cursor for ``payload`` signed as keel signs them, with the (development) default secret."""
    return base64.urlsafe_b64encode(payload + _mac(default_cursor_secret(), payload)).rstrip(b"=").decode()


def body_of(cursor: str) -> dict[str, Any]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    body: dict[str, Any] = json.loads(raw[:-32])
    return body


async def real_cursor(new_uow: NewUow, order_by: str) -> str:
    await seed(new_uow(), gauges=(Gauge(id=i, qty=i, code=f"c{i}") for i in range(1, 4)))
    async with new_uow() as uow:
        cursor: str | None = (await uow.gauges.paginate_by_cursor(size=1, order_by=order_by)).next_cursor
    assert cursor is not None
    return cursor


HOSTILE_VALUES = {
    "huge float": 1e300,
    "fraction": 1.5,
    "boolean": True,
    "beyond int32": 2**31,
    "beyond int64": 2**70,
    "huge decimal": {"$dec": "1e999999999"},
    "interval overflow": {"$td": 1e300},
    "nested tag": {"$dec": {"$dec": "1"}},
    "two tags": {"$dec": "1", "$f": "1"},
    "list": [1],
    "text": "1",
    "bad datetime": {"$dt": "yesterday"},
    "uuid from a number": {"$u": 5},
}


@pytest.mark.parametrize("value", HOSTILE_VALUES.values(), ids=HOSTILE_VALUES.keys())
async def test_signed_cursors_with_values_an_integer_sort_key_cannot_take_are_validation_errors(
    new_uow: NewUow, value: Any
) -> None:
    """No OverflowError, no huge number built, no type error from the database: an invalid_cursor ValidationError."""
    body = body_of(await real_cursor(new_uow, "qty"))
    forged = sign(json.dumps({**body, "v": [value, 1]}).encode())
    async with new_uow() as uow:
        with pytest.raises(ValidationError) as caught:
            await uow.gauges.paginate_by_cursor(size=1, order_by="qty", cursor=forged)
    assert caught.value.errors[0]["type"] == "invalid_cursor"


@pytest.mark.parametrize(
    ("order_by", "value"),
    [("price", {"$dec": "1e20"}), ("price", {"$dec": "NaN"}), ("price", 5), ("code", "a\x00b"), ("code", 5)],
)
async def test_signed_cursors_with_values_other_sort_keys_cannot_take_are_validation_errors(
    new_uow: NewUow, order_by: str, value: Any
) -> None:
    """Numeric(8,2) beyond its precision or not in keel's decimal form, text with NUL or not text: refused."""
    body = body_of(await real_cursor(new_uow, order_by))
    forged = sign(json.dumps({**body, "v": [value, 1]}).encode())
    async with new_uow() as uow:
        with pytest.raises(ValidationError) as caught:
            await uow.gauges.paginate_by_cursor(size=1, order_by=order_by, cursor=forged)
    assert caught.value.errors[0]["type"] == "invalid_cursor"


async def test_a_deeply_nested_signed_cursor_is_a_validation_error(new_uow: NewUow) -> None:
    """Nesting past the JSON parser's recursion limit (within the length limit) is malformed, not RecursionError."""
    body = body_of(await real_cursor(new_uow, "qty"))
    depth = 3000
    payload = json.dumps({**body, "v": None}).replace("null", "[" * depth + "]" * depth).encode()
    forged = sign(payload)
    async with new_uow() as uow:
        with pytest.raises(ValidationError) as caught:
            await uow.gauges.paginate_by_cursor(size=1, order_by="qty", cursor=forged)
    assert caught.value.errors[0]["msg"] == "malformed"


async def test_a_signed_cursor_with_a_non_integer_direction_is_a_validation_error(new_uow: NewUow) -> None:
    """The direction flag is 0 or 1, not 1.0 or true."""
    body = body_of(await real_cursor(new_uow, "qty"))
    async with new_uow() as uow:
        for backward in (1.0, True, "1"):
            forged = sign(json.dumps({**body, "b": backward}).encode())
            with pytest.raises(ValidationError):
                await uow.gauges.paginate_by_cursor(size=1, order_by="qty", cursor=forged)


async def test_an_untouched_cursor_still_leads_to_the_next_page(new_uow: NewUow) -> None:
    """The strict decoding accepts what keel itself issues, for integer, decimal and text sort keys."""
    for order_by in ("qty", "price", "code", "-code"):
        cursor = await real_cursor(new_uow, order_by)
        async with new_uow() as uow:
            page = await uow.gauges.paginate_by_cursor(size=1, order_by=order_by, cursor=cursor)
        assert len(page.items) == 1
        async with new_uow() as uow:
            await uow.gauges.delete_many()
            await uow.commit()
