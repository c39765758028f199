"""Cursor tokens: signing, binding to the query, value round trips, configuration."""

from __future__ import annotations

import base64
import enum
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Enum, String
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Mapped, mapped_column

from keel import ConfigurationError, ValidationError
from keel.config import KeelSettings, RepositorySettings
from keel.infrastructure.database import create_session_factory
from keel.infrastructure.database.engine import REPOSITORY_SETTINGS
from keel.infrastructure.repository import configure_repositories, set_default_cursor_secret
from keel.infrastructure.repository._sorting import sort_keys
from keel.infrastructure.repository.cursor import (
    MAX_CURSOR_LENGTH,
    CursorState,
    decode_cursor,
    encode_cursor,
    fingerprint,
)
from keel.infrastructure.repository.filters import In, build_conditions
from keel.infrastructure.repository.settings import repository_defaults
from keel.orm import Base
from keel.testing import InMemoryRepository
from tests.contract.models import Item


class Colour(enum.Enum):
    RED = "r"
    BLUE = "b"


class Typed(Base):
    __tablename__ = "repo_typed"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    when: Mapped[datetime]
    day: Mapped[date]
    at: Mapped[time]
    span: Mapped[timedelta]
    amount: Mapped[Decimal]
    blob: Mapped[bytes]
    colour: Mapped[Colour] = mapped_column(Enum(Colour))
    ratio: Mapped[float]
    label: Mapped[str] = mapped_column(String(10))


@pytest.fixture(autouse=True)
def restore_settings() -> Iterator[None]:
    """Leave the process-wide repository defaults as they were."""
    saved = repository_defaults.copy()
    yield
    repository_defaults.restore(saved)


def test_every_supported_sort_value_type_survives_a_round_trip() -> None:
    """Datetimes (aware), dates, times, intervals, decimals, UUIDs, bytes, enums and floats decode as encoded."""
    keys = sort_keys(Typed, ["when", "day", "at", "span", "amount", "blob", "colour", "ratio", "label"])
    values = (
        datetime(2024, 5, 1, 12, 30, 1, 123456, tzinfo=UTC),
        date(2024, 5, 1),
        time(23, 59, 58),
        timedelta(days=2, seconds=3),
        Decimal("10.005"),
        b"\x00\xff",
        Colour.BLUE,
        float("inf"),
        "é",
        uuid.UUID(int=7),
    )
    token = encode_cursor(CursorState(values, True, "fp"), b"k")
    state = decode_cursor(token, b"k", fingerprint="fp", keys=keys, model=Typed)
    assert state.values == values
    assert state.backward
    assert all(type(a) is type(b) for a, b in zip(state.values, values, strict=True))


def test_a_cursor_is_url_safe_and_readable_but_signed() -> None:
    """Tokens use the base64url alphabet only; the payload is plain JSON, the tag covers it."""
    keys = sort_keys(Item, "name")
    token = encode_cursor(CursorState(("lamp", 3), False, "fp"), b"k")
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    payload = json.loads(raw[:-32])
    assert payload == {"b": 0, "f": "fp", "v": ["lamp", 3]}
    forged = json.dumps({"b": 0, "f": "fp", "v": ["zzz", 3]}, separators=(",", ":"), sort_keys=True).encode()
    forged_token = base64.urlsafe_b64encode(forged + raw[-32:]).rstrip(b"=").decode()
    with pytest.raises(ValidationError, match="signature"):
        decode_cursor(forged_token, b"k", fingerprint="fp", keys=keys, model=Item)


def test_a_cursor_signed_with_another_key_is_refused() -> None:
    """Verifying under a different secret fails with invalid_cursor."""
    keys = sort_keys(Item, "name")
    token = encode_cursor(CursorState(("lamp", 3), False, "fp"), b"one key")
    with pytest.raises(ValidationError) as caught:
        decode_cursor(token, b"another key", fingerprint="fp", keys=keys, model=Item)
    assert caught.value.errors == [
        {
            "loc": ["cursor"],
            "msg": "signature mismatch (tampered, or signed with another key)",
            "type": "invalid_cursor",
        }
    ]
    assert caught.value.code == "validation_error"


def test_the_fingerprint_ignores_the_order_of_conditions_but_not_their_values() -> None:
    """AND is commutative, so condition order does not matter; a changed value does."""
    keys = sort_keys(Item, "name")
    a, b = Item.rank > 1, Item.category == "x"
    assert fingerprint(Item, keys, [a, b], "live") == fingerprint(Item, keys, [b, a], "live")
    assert fingerprint(Item, keys, [a], "live") != fingerprint(Item, keys, [Item.rank > 2], "live")
    assert fingerprint(Item, keys, [a], "live") != fingerprint(Item, keys, [a], "include_deleted")
    assert fingerprint(Item, keys, [], "live") != fingerprint(Item, sort_keys(Item, "-name"), [], "live")


def test_the_fingerprint_ignores_the_order_of_in_values() -> None:
    """IN is a set: ["b", "a"], ["a", "b"] and {"a", "b"} make the same fingerprint; other values do not."""
    keys = sort_keys(Item, "name")
    same = [
        build_conditions(Item, [In("name", ["b", "a"])], {}),
        build_conditions(Item, [In("name", ["a", "b", "a"])], {}),
        [Item.name.in_({"a", "b"})],
    ]
    assert len({fingerprint(Item, keys, conditions, "live") for conditions in same}) == 1
    assert fingerprint(Item, keys, [Item.name.in_(["a", "c"])], "live") != fingerprint(Item, keys, same[0], "live")
    assert fingerprint(Item, keys, [Item.name.not_in(["a", "b"])], "live") != fingerprint(Item, keys, same[0], "live")


def test_keel_never_issues_a_cursor_longer_than_it_accepts() -> None:
    """Values up to the limit round-trip; beyond it, making the cursor is a ConfigurationError naming the key."""
    keys = sort_keys(Item, "name")
    token = encode_cursor(CursorState(("x" * 5000, 3), False, "fp"), b"k", keys)
    assert MAX_CURSOR_LENGTH >= len(token) > 4096
    assert decode_cursor(token, b"k", fingerprint="fp", keys=keys, model=Item).values == ("x" * 5000, 3)
    with pytest.raises(ConfigurationError) as caught:
        encode_cursor(CursorState(("x" * MAX_CURSOR_LENGTH, 3), False, "fp"), b"k", keys)
    assert caught.value.details == {"field": "name", "maximum": MAX_CURSOR_LENGTH}
    with pytest.raises(ValidationError):
        decode_cursor("a" * (MAX_CURSOR_LENGTH + 1), b"k", fingerprint="fp", keys=keys, model=Item)


async def test_repositories_sign_with_their_class_secret_or_the_configured_default() -> None:
    """A cursor from one secret is refused by a repository using another."""

    class Signed(InMemoryRepository[Item]):
        cursor_secret = "class secret"

    default_repo = InMemoryRepository(model=Item)
    default_repo.workspace.store.add(*(Item(name=n) for n in "abc"))
    signed = Signed()
    signed.workspace.store.add(*(Item(name=n) for n in "abc"))
    token = (await default_repo.paginate_by_cursor(size=1)).next_cursor
    with pytest.raises(ValidationError):
        await signed.paginate_by_cursor(size=1, cursor=token)
    set_default_cursor_secret("rotated")
    with pytest.raises(ValidationError):
        await default_repo.paginate_by_cursor(size=1, cursor=token)


def test_configure_repositories_applies_settings() -> None:
    """Page sizes and the secret become the process-wide defaults."""
    configure_repositories(RepositorySettings(max_page_size=20, default_page_size=5, cursor_secret=SecretStr("s")))
    assert (repository_defaults.max_page_size, repository_defaults.default_page_size) == (20, 5)
    assert repository_defaults.cursor_secret == b"s"


def test_production_refuses_the_development_cursor_secret() -> None:
    """KEEL_ENV=production with the public default secret is a ConfigurationError naming the variable."""
    with pytest.raises(ConfigurationError) as caught:
        configure_repositories(KeelSettings(env="production"))
    assert "KEEL_REPOSITORY__CURSOR_SECRET" in str(caught.value)
    configure_repositories(KeelSettings(env="production", repository={"cursor_secret": "a real secret"}))


def test_a_production_session_factory_refuses_the_development_cursor_secret() -> None:
    """create_session_factory(engine, repository_settings=KeelSettings(env="production")) checks the secret."""
    engine = create_async_engine("sqlite+aiosqlite://")
    with pytest.raises(ConfigurationError) as caught:
        create_session_factory(engine, repository_settings=KeelSettings(env="production"))
    assert caught.value.details["variables"] == ["KEEL_REPOSITORY__CURSOR_SECRET"]
    settings = KeelSettings(
        env="production", repository={"cursor_secret": "a real secret", "max_page_size": 9, "default_page_size": 9}
    )
    factory = create_session_factory(engine, repository_settings=settings, info={"mine": 1})
    session = factory()
    assert session.info[REPOSITORY_SETTINGS].max_page_size == 9
    assert session.info["mine"] == 1
    assert repository_defaults.max_page_size == 1000  # nothing process-wide changed


def test_settings_refuse_a_default_size_above_the_maximum(monkeypatch: pytest.MonkeyPatch) -> None:
    """KEEL_REPOSITORY__DEFAULT_PAGE_SIZE above the maximum is a ConfigurationError."""
    monkeypatch.setenv("KEEL_REPOSITORY__MAX_PAGE_SIZE", "10")
    monkeypatch.setenv("KEEL_REPOSITORY__DEFAULT_PAGE_SIZE", "50")
    with pytest.raises(ConfigurationError):
        KeelSettings(_env_file=None)
    monkeypatch.setenv("KEEL_REPOSITORY__DEFAULT_PAGE_SIZE", "5")
    settings: Any = KeelSettings(_env_file=None)
    assert settings.repository.max_page_size == 10


#: A cursor made by keel before value coercion moved to ``repository/_coerce.py``
#: (commit 702066d), over every supported sort value type, reading backward.
_EARLIER_CURSOR = (
    "eyJiIjoxLCJmIjoiZ29sZGVuIiwidiI6W3siJGR0IjoiMjAyNC0wNS0wMVQxMjozMDowMS4xMjM0NTYrMDA6MDAifSx7IiRkIjoiMjAyNC0wNS0w"
    "MSJ9LHsiJHQiOiIyMzo1OTo1OCJ9LHsiJHRkIjoxNzI4MDMuMH0seyIkZGVjIjoiMTAuMDA1In0seyIkYiI6IkFQOD0ifSx7IiRlIjoiQkxVRSJ9"
    "LDAuMjUsImxhbXAiLHsiJHUiOiIxMjM0NTY3OC0xMjM0LTU2NzgtMTIzNC01Njc4MTIzNDU2NzgifV19eOCXtTJlO0462LUwdfLLoZOm9yqEbHbE"
    "UkFClaSoxZ0"
)


def test_a_cursor_issued_by_an_earlier_keel_still_decodes_to_the_same_values() -> None:
    """The cursor format is stable: a token from before the coercion split decodes to the values it was made from."""
    keys = sort_keys(Typed, ["when", "day", "at", "span", "amount", "blob", "colour", "ratio", "label"])
    state = decode_cursor(
        _EARLIER_CURSOR, b"golden-secret-0123456789abcdef!!", fingerprint="golden", keys=keys, model=Typed
    )
    assert state.backward
    assert state.values == (
        datetime(2024, 5, 1, 12, 30, 1, 123456, tzinfo=UTC),
        date(2024, 5, 1),
        time(23, 59, 58),
        timedelta(days=2, seconds=3),
        Decimal("10.005"),
        b"\x00\xff",
        Colour.BLUE,
        0.25,
        "lamp",
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
    )
    again = encode_cursor(state, b"golden-secret-0123456789abcdef!!", keys)
    assert again == _EARLIER_CURSOR
