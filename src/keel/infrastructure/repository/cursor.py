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

import pydantic
from pydantic import SecretStr
from sqlalchemy import inspect

from keel.config import DEV_CURSOR_SECRET
from keel.cross_cutting.error import ConfigurationError, ValidationError
from keel.infrastructure.database.engine import check_cursor_secret
from keel.infrastructure.database.values import storable_problem
from keel.infrastructure.repository._sorting import SortKey
from keel.infrastructure.repository.filters import column_python_type, type_adapter

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

_secret: bytes = DEV_CURSOR_SECRET.encode()
_DEV_SECRET = DEV_CURSOR_SECRET.encode()
#: Set once the first cursor signed with the development secret has been warned about.
_warned_development_secret = False
_logger = logging.getLogger("keel.repository")

SecretLike = str | bytes | SecretStr


def secret_bytes(secret: SecretLike) -> bytes:
    """The raw secret behind a str, bytes or pydantic ``SecretStr``."""
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not raw:
        raise ConfigurationError("the cursor secret must not be empty")
    return raw


def set_default_cursor_secret(secret: SecretLike, *, production: bool = False) -> None:
    """Set the process-wide secret: for repositories whose class and session factory set none.

    With ``production=True`` the development default is refused outright.
    """
    global _secret
    raw = secret_bytes(secret)
    check_cursor_secret(raw, production=production)
    _secret = raw


def default_cursor_secret() -> bytes:
    return _secret


# --- the token --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CursorState:
    """What a cursor says: the boundary row's sort values and the way to read."""

    values: tuple[Any, ...]
    backward: bool
    fingerprint: str


def _mac(secret: bytes, payload: bytes) -> bytes:
    key = hmac.new(secret, _DOMAIN, hashlib.sha256).digest()
    return hmac.new(key, payload, hashlib.sha256).digest()


def encode_cursor(state: CursorState, secret: bytes, keys: Sequence[SortKey] = ()) -> str:
    """The signed token for ``state``; ``keys`` (the sort keys) name the culprit if it is too long."""
    if secret == _DEV_SECRET:
        _warn_development_secret()
    encoded = [_encode_value(v) for v in state.values]
    body = {"v": encoded, "b": int(state.backward), "f": state.fingerprint}
    payload = json.dumps(body, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()
    token = base64.urlsafe_b64encode(payload + _mac(secret, payload)).rstrip(b"=").decode("ascii")
    if len(token) > MAX_CURSOR_LENGTH:
        raise _too_long(encoded, keys)
    return token


def _warn_development_secret() -> None:
    # Once per process, and only when a cursor is really signed with it: a
    # warning on every start would be noise for services that never page.
    global _warned_development_secret
    if not _warned_development_secret:
        _warned_development_secret = True
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
    """``value`` as the column's Python type, as strictly as an id; a signed cursor of another type is refused.

    Only a holder of the secret can make one (the public development
    secret, say), but it must not reach the database as a type or range
    error, make the server build a huge number (``{"$dec": "1e999999999"}``
    for an integer column) or break the in-memory twin's comparisons. keel
    writes each sort value in its column's own form, so a value of another
    form is refused rather than converted.
    """
    if value is None:
        return None
    python_type: Any = column_python_type(model, name)
    if python_type is None:
        return value
    converted = _exact(value, python_type)
    if converted is _REFUSED:
        raise invalid_cursor("malformed")
    if isinstance(converted, datetime) and _is_aware_column(column_type) and converted.utcoffset() is None:
        raise invalid_cursor("malformed")
    # Lengths are not checked: SQLite stores longer text than String(n) says,
    # and a cursor must lead past such a row too.
    if storable_problem(column_type, converted, check_length=False):
        raise invalid_cursor("malformed")
    return converted


_REFUSED = object()


def _exact(value: Any, python_type: Any) -> Any:
    """``value`` when it already has the column's type (or one keel encodes it as), else ``_REFUSED``."""
    if python_type is float:
        return float(value) if type(value) in (int, float) else _REFUSED
    if isinstance(python_type, type) and issubclass(python_type, enum.Enum):
        if isinstance(value, python_type):
            return value
        try:  # a str or int enum is encoded as its plain value
            return python_type(value) if isinstance(value, _PLAIN) and not isinstance(value, bool) else _REFUSED
        except ValueError:
            return _REFUSED
    if python_type is datetime or python_type is bool or python_type is int:
        # Exact types: a bool is no int here, a datetime no date.
        return value if type(value) is python_type else _REFUSED
    if python_type is date:
        return value if type(value) is date else _REFUSED
    if isinstance(python_type, type) and python_type in _KNOWN:
        return value if isinstance(value, python_type) else _REFUSED
    try:  # a custom column type: its declared Python type decides
        return type_adapter(python_type).validate_python(value, strict=True)
    except (pydantic.ValidationError, pydantic.PydanticSchemaGenerationError, TypeError, ValueError):
        return _REFUSED


_KNOWN = {str, time, timedelta, Decimal, uuid.UUID, bytes}


def _is_aware_column(column_type: Any) -> bool:
    impl = getattr(column_type, "impl_instance", column_type)
    return bool(getattr(impl, "timezone", False))


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
