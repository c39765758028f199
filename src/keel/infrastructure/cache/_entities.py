"""Mapped entities to JSON and back, as attached, persistent instances with the version they were read at.

A cached entity is its loaded column values (tagged JSON for dates, decimals,
UUIDs, enums, bytes ...) plus its polymorphic identity. On a hit the instance
is built without ``__init__`` (as a query would), its values set as
*committed* state, and it is added to the session as a persistent, clean
object: its next UPDATE says ``WHERE version = <cached version>``, so a stale
copy fails with ``ConcurrencyError`` instead of overwriting newer work.

Models whose mapper loads relationships eagerly (``selectin``, ``joined``
...) are not cached: their related rows are not part of the cached value,
and loading them afterwards would bypass the soft-delete rules a query keeps.
"""

from __future__ import annotations

import base64
import enum
import functools
import json
import logging
import math
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

_logger = logging.getLogger("keel.cache")
_EAGER = frozenset({"joined", "selectin", "subquery", "immediate"})


class Uncacheable(Exception):
    """A value the entity codec cannot store (the entity is then simply not cached)."""


@functools.cache
def model_name(mapper: Mapper[Any]) -> str:
    """The name keys use for a model: its base table, so every class of one hierarchy shares keys."""
    table = mapper.base_mapper.local_table
    return str(getattr(table, "fullname", getattr(table, "name", mapper.base_mapper.class_.__name__)))


def entity_guard(name: str, identity: tuple[Any, ...]) -> str:
    return f"{name}:{json.dumps(list(identity), default=str, separators=(',', ':'))}"


@functools.cache
def cacheable(mapper: Mapper[Any]) -> bool:
    """Whether entities of ``mapper`` can be cached (no eagerly loaded relationships)."""
    eager = [r.key for r in mapper.relationships if r.lazy in _EAGER]
    if eager:
        _logger.warning("cache: %s loads %s eagerly; its entities are not cached", mapper.class_.__name__, eager)
    return not eager


@functools.cache
def _column_types(mapper: Mapper[Any]) -> dict[str, Any]:
    return {prop.key: prop.columns[0].type for prop in mapper.column_attrs}


def encode_entity(entity: object) -> dict[str, Any] | None:
    """The cached form of ``entity`` (its loaded columns), or None when a value cannot be cached."""
    state = inspect(entity)
    mapper = state.mapper
    loaded = state.dict
    try:
        columns = {key: _encode(loaded[key]) for key in _column_types(mapper) if key in loaded}
    except Uncacheable as exc:
        _logger.debug("cache: %s not cached: %s", mapper.class_.__name__, exc)
        return None
    return {"t": _json_scalar(mapper.polymorphic_identity), "c": columns}


def attach_entity(session: AsyncSession, mapper: Mapper[Any], payload: Any) -> Any:
    """The entity ``payload`` describes, persistent in ``session`` (or what it already holds); None if unusable."""
    try:
        target = mapper
        if payload["t"] is not None and mapper.polymorphic_map:
            target = mapper.polymorphic_map[payload["t"]]
        types = _column_types(target)
        entity = target.class_manager.new_instance()
        for key, value in payload["c"].items():
            set_committed_value(entity, key, _decode(value, types[key]))
    except (KeyError, TypeError, ValueError, LookupError, Uncacheable) as exc:
        _logger.debug("cache: an unusable cached %s was ignored: %r", mapper.class_.__name__, exc)
        return None
    make_transient_to_detached(entity)
    key = inspect(entity).key
    held = session.identity_map.get(key) if key is not None else None
    if held is not None:
        return held  # a concurrent load of this unit of work got there first
    session.add(entity)
    return entity


def _json_scalar(value: Any) -> Any:
    return value if value is None or isinstance(value, str | int) else str(value)


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$": "float", "v": repr(value)}
    if isinstance(value, enum.Enum):
        return {"$": "enum", "v": value.name}
    if isinstance(value, datetime):
        return {"$": "datetime", "v": value.isoformat()}
    if isinstance(value, date):
        return {"$": "date", "v": value.isoformat()}
    if isinstance(value, time):
        return {"$": "time", "v": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$": "timedelta", "v": value.total_seconds()}
    if isinstance(value, Decimal):
        return {"$": "decimal", "v": str(value)}
    if isinstance(value, uuid.UUID):
        return {"$": "uuid", "v": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$": "bytes", "v": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict | list):
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise Uncacheable(str(exc)) from exc
        return {"$": "json", "v": value}
    raise Uncacheable(f"no cached form for {type(value).__name__}")


def _decode(value: Any, column_type: Any) -> Any:
    if not isinstance(value, dict):
        return value
    tag, raw = value["$"], value["v"]
    if tag == "json":
        return raw
    if tag == "datetime":
        return datetime.fromisoformat(raw)
    if tag == "date":
        return date.fromisoformat(raw)
    if tag == "time":
        return time.fromisoformat(raw)
    if tag == "timedelta":
        return timedelta(seconds=raw)
    if tag == "decimal":
        return Decimal(raw)
    if tag == "uuid":
        return uuid.UUID(raw)
    if tag == "bytes":
        return base64.b64decode(raw)
    if tag == "float":
        return float(raw)
    if tag == "enum":
        enum_class = getattr(column_type, "enum_class", None)
        if enum_class is None:
            raise Uncacheable("an enum value for a column without an enum class")
        return enum_class[raw]
    raise Uncacheable(f"unknown tag {tag!r}")
