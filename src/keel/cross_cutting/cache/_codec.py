"""How values are stored: ``<stamp>\\n<JSON>``, the same bytes in Redis and in memory.

The stamp comes first so Redis scripts can write it with a plain string
concatenation and readers can compare it without parsing the JSON. Pydantic
models are stored as their JSON dump; everything else must be JSON as it is.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from keel.cross_cutting.error import CacheError

SEPARATOR = "\n"


def dumps(value: Any) -> str:
    """``value`` as compact JSON; a :class:`CacheError` for what JSON cannot hold."""
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CacheError(f"cannot cache a {type(value).__name__}: values are JSON or pydantic models") from exc


def pack(stamp: str, payload: str) -> str:
    return f"{stamp}{SEPARATOR}{payload}"


def unpack(stored: str | bytes | None, stamp: str) -> tuple[bool, Any]:
    """(hit, value) of a stored string read back with the current ``stamp``."""
    if stored is None:
        return False, None
    text = stored.decode() if isinstance(stored, bytes) else stored
    found, _, payload = text.partition(SEPARATOR)
    if found != stamp:
        return False, None
    return True, json.loads(payload)


def make_stamp(epoch: str | bytes | None, generations: Sequence[str | bytes | None]) -> str:
    """The stamp of a lookup: the namespace epoch, then each guard's generation ('' when it has none)."""
    parts = [_text(epoch) or "0", *(_text(g) for g in generations)]
    return "|".join(parts)


def new_token() -> str:
    return secrets.token_hex(8)


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
