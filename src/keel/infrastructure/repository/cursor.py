"""Opaque, signed keyset cursors.

A cursor carries the sort values of the row a page ended (or began) on,
the direction to read in, and a fingerprint of the ordering and filter it
was made for. It is compact JSON, base64url-encoded, followed by an
HMAC-SHA256 tag over the JSON under the configured secret.

Why the standard library's :mod:`hmac` and not a token library (itsdangerous,
a JWT package): the cursor needs exactly one primitive, a keyed MAC checked
in constant time, and no expiry, key rotation or claims; ``hmac`` +
``hashlib`` are that primitive, audited and always installed. A cursor is
signed, not encrypted: its sort values are readable by whoever holds it, which
is fine for values the page already shows (do not sort by secret columns).

Anything wrong with a cursor (tampering, another key, another ordering or
filter, a truncated string) is a :class:`ValidationError` with the type
``invalid_cursor``, never a database error.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import hashlib
import hmac
import json
import logging
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import inspect

from keel.config import DEV_CURSOR_SECRET as DEV_CURSOR_SECRET
from keel.cross_cutting.error import ConfigurationError, ValidationError
from keel.infrastructure.repository._coerce import REFUSED, strict_value
from keel.infrastructure.repository._sorting import SortKey
from keel.infrastructure.repository.settings import DEVELOPMENT_SECRET
from keel.infrastructure.repository.settings import SecretLike as SecretLike
from keel.infrastructure.repository.settings import default_cursor_secret as default_cursor_secret
from keel.infrastructure.repository.settings import secret_bytes as secret_bytes
from keel.infrastructure.repository.settings import set_default_cursor_secret as set_default_cursor_secret

#: The longest cursor keel issues or accepts (longer input is refused before
#: any decoding work). A cursor carries the boundary row's sort values, so
#: its length follows them: about 100 characters for a timestamp and a key,
#: but a 6,000-character text sort value would not fit. Rather than hand out
#: a cursor it would refuse, keel raises ConfigurationError when making one
#: (sort cursor pages by short, bounded columns). 8 KiB is also about what
#: proxies accept in a request line, where cursors usually travel.
MAX_CURSOR_LENGTH = 8192
_TAG_BYTES = 32
_DOMAIN = b"keel.cursor.v1"

_logger = logging.getLogger("keel.repository")


# --- the token --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CursorState:
    """What a cursor says: the boundary row's sort values and the way to read."""

    values: tuple[Any, ...]
    backward: bool
    fingerprint: str


@functools.lru_cache(maxsize=64)
def _key(secret: bytes) -> bytes:
    # Derived once per secret, not per cursor: a process uses a handful of
    # secrets, and the derivation is a whole HMAC of its own.
    return hmac.new(secret, _DOMAIN, hashlib.sha256).digest()


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(_key(secret), payload, hashlib.sha256).digest()


def encode_cursor(state: CursorState, secret: bytes, keys: Sequence[SortKey] = ()) -> str:
    """The signed token for ``state``; ``keys`` (the sort keys) name the culprit if it is too long."""
    if secret == DEVELOPMENT_SECRET:
        _warn_development_secret()
    encoded = [_encode_value(v) for v in state.values]
    body = {"v": encoded, "b": int(state.backward), "f": state.fingerprint}
    payload = json.dumps(body, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()
    token = base64.urlsafe_b64encode(payload + _mac(secret, payload)).rstrip(b"=").decode("ascii")
    if len(token) > MAX_CURSOR_LENGTH:
        raise _too_long(encoded, keys)
    return token


@functools.cache
def _warn_development_secret() -> None:
    # Once per process (the cache is the "already warned" flag), and only when
    # a cursor is really signed with it: a warning on every start would be
    # noise for services that never page.
    _logger.warning(
        "a cursor was signed with the public development secret (anyone can forge such cursors); "
        "set KEEL_REPOSITORY__CURSOR_SECRET"
    )


def _too_long(encoded: Sequence[Any], keys: Sequence[SortKey]) -> ConfigurationError:
    sizes = [len(json.dumps(v)) for v in encoded]
    longest = sizes.index(max(sizes))
    name = keys[longest].name if longest < len(keys) else f"sort key {longest + 1}"
    return ConfigurationError(
        f"a cursor would exceed {MAX_CURSOR_LENGTH} characters: a row's {name!r} value is {sizes[longest]} "
        f"characters long, and cursors carry the sort values; order cursor pages by a short, bounded column "
        f"(a timestamp, a code, the key) or use offset pages",
        field=name,
        maximum=MAX_CURSOR_LENGTH,
    )


def invalid_cursor(msg: str) -> ValidationError:
    return ValidationError(f"invalid cursor: {msg}", errors=[{"loc": ["cursor"], "msg": msg, "type": "invalid_cursor"}])


def decode_cursor(
    token: object, secret: bytes, *, fingerprint: str, keys: Sequence[SortKey], model: type[Any]
) -> CursorState:
    """Verify and read ``token``; a :class:`ValidationError` for anything amiss."""
    if not isinstance(token, str) or not token or len(token) > MAX_CURSOR_LENGTH:
        raise invalid_cursor("not a cursor")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise invalid_cursor("not a cursor") from None
    payload, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
    if len(raw) <= _TAG_BYTES or not hmac.compare_digest(tag, _mac(secret, payload)):
        raise invalid_cursor("signature mismatch (tampered, or signed with another key)")
    try:
        body = json.loads(payload)
        values, backward, found = body["v"], body["b"], body["f"]
    except (ValueError, KeyError, TypeError, RecursionError):
        # RecursionError: deep nesting ("[[[[...") in a payload signed with a known secret.
        raise invalid_cursor("malformed") from None
    if found != fingerprint:
        raise invalid_cursor("made for another ordering or filter")
    if not isinstance(values, list) or len(values) != len(keys) or type(backward) is not int or backward not in (0, 1):
        raise invalid_cursor("malformed")
    mapper = inspect(model)
    decoded = []
    for value, key in zip(values, keys, strict=True):
        column_type = mapper.column_attrs[key.name].columns[0].type
        decoded.append(_typed(_decode_value(value, column_type), model, key.name, column_type))
    return CursorState(tuple(decoded), bool(backward), fingerprint)


# --- values --------------------------------------------------------------------------


def _encode_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$f": repr(value)}
    if isinstance(value, enum.Enum):
        return {"$e": value.name}
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    if isinstance(value, time):
        return {"$t": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$td": value.total_seconds()}
    if isinstance(value, Decimal):
        return {"$dec": str(value)}
    if isinstance(value, uuid.UUID):
        return {"$u": str(value)}
    if isinstance(value, bytes):
        return {"$b": base64.urlsafe_b64encode(value).decode()}
    raise ConfigurationError(f"cannot put a {type(value).__name__} sort value into a cursor")


def _timedelta(seconds: Any) -> timedelta:
    if type(seconds) not in (int, float):
        raise TypeError("expected seconds")
    return timedelta(seconds=seconds)


#: Tag -> (the Python type it stands for, its decoder). Decoders take text
#: (numbers for ``$td``) that ``decode_cursor`` has already length-checked.
_DECODERS: dict[str, tuple[type[Any], Any]] = {
    "$f": (float, float),
    "$dt": (datetime, datetime.fromisoformat),
    "$d": (date, date.fromisoformat),
    "$t": (time, time.fromisoformat),
    "$td": (timedelta, _timedelta),
    "$dec": (Decimal, Decimal),
    "$u": (uuid.UUID, uuid.UUID),
    "$b": (bytes, base64.urlsafe_b64decode),
}
_PLAIN = (bool, int, str, float)
_DECODE_ERRORS = (
    KeyError,
    ValueError,
    TypeError,
    AttributeError,
    OverflowError,
    InvalidOperation,
    NotImplementedError,
    binascii.Error,
)


def _decode_value(value: Any, column_type: Any) -> Any:
    """A cursor's JSON value back as Python: a scalar, or one ``{"$tag": payload}``; nothing deeper."""
    try:
        if isinstance(value, dict) and len(value) == 1:
            ((tag, raw),) = value.items()
            if isinstance(raw, dict | list):
                raise TypeError("nested")
            if tag == "$e":
                return column_type.python_type[raw]
            expected, decode = _DECODERS[tag]
            decoded = decode(raw)
            if not isinstance(decoded, expected):
                raise TypeError("wrong type")
            return decoded
        if value is None or isinstance(value, _PLAIN):
            return value
    except _DECODE_ERRORS:
        pass
    raise invalid_cursor("malformed")


def _typed(value: Any, model: type[Any], name: str, column_type: Any) -> Any:
    """``value`` as the column's Python type, as strictly as an id (see ``strict_value``); else a bad cursor."""
    converted = strict_value(model, name, value, column_type)
    if converted is REFUSED:
        raise invalid_cursor("malformed")
    return converted


# --- fingerprints ----------------------------------------------------------------------


def fingerprint(model: type[Any], keys: Sequence[SortKey], conditions: Sequence[Any], mode: str) -> str:
    """A short digest of everything that decides a page's rows and order.

    Conditions are compiled (never executed) to SQL text with their bound
    values; their order does not matter, as AND does not care, and neither
    does the order of an ``IN`` list's values. It must come out the same in
    every process that serves the next page (another worker, after a
    restart), so nothing in it may depend on the hash seed: ``IN`` values,
    possibly a Python set, are sorted by their ``repr``.
    """
    parts = sorted(_condition_text(c) for c in conditions)
    text = json.dumps([f"{model.__module__}.{model.__qualname__}", [k.token for k in keys], mode, parts], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _condition_text(condition: Any) -> str:
    compiled = condition.compile()
    params = []
    for name, value in compiled.params.items():
        bind = compiled.binds.get(name)
        if bind is not None and bind.expanding and isinstance(value, Iterable) and not isinstance(value, str | bytes):
            params.append((str(name), repr(sorted({repr(v) for v in value}))))
        else:
            params.append((str(name), repr(value)))
    return f"{compiled}|{sorted(params)}"
