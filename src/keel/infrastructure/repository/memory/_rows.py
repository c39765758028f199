"""Rows of the in-memory store: keys, snapshots, and the defaults INSERT and UPDATE would apply.

What a workspace needs to read and write one row as the SQL flush would:
the primary key of an entity, a comparable snapshot of its state, the
``version`` it holds, insert defaults (``version`` 1, column defaults,
generated integer keys) and update defaults (``version + 1``, ``onupdate``
columns, ``updated_at``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, inspect
from sqlalchemy.exc import NoInspectionAvailable
from sqlalchemy.orm import Mapper

from keel.cross_cutting.error import ConfigurationError, ConflictError
from keel.infrastructure.database._integrity import duplicate_key_error
from keel.infrastructure.database.aggregate_lock import plan_of
from keel.infrastructure.database.orm import ModelTraits, model_traits

Key = tuple[Any, ...]
RowId = tuple[type[Any], Key]

#: Set on entities a workspace handed out or committed: the version they
#: were read at. Lets a copy from an earlier unit of work be re-added and
#: saved with a version check, like a detached instance in SQLAlchemy.
READ_AT = "_keel_in_memory_read_at"
#: Set on entities a workspace handed out or was given: a weak reference to it, so
#: another open workspace refuses them as a session refuses another session's objects.
OWNER = "_keel_in_memory_owner"
MISSING = object()


def mapper_of(model: type[Any]) -> Mapper[Any]:
    """The mapper of ``model``; a clear error when the class is not mapped yet."""
    try:
        mapper: Mapper[Any] = inspect(model)
    except Exception as exc:
        raise ConfigurationError(
            f"{getattr(model, '__name__', model)} is not mapped: the in-memory repository reads the same "
            "column metadata as the SQL one, so import the module that maps it (declarative models, or "
            "your map_imperatively/start_mappers call) before using it"
        ) from exc
    return mapper


def identity_of(model: type[Any], entity: object) -> Key:
    return tuple(getattr(entity, name) for name in model_traits(model).primary_key)


def state_of(entity: object, depth: int = 0) -> Any:
    """A comparable snapshot of an entity's columns and, recursively, its relationships."""
    try:
        mapper: Mapper[Any] = inspect(type(entity))
    except NoInspectionAvailable:
        return copy.deepcopy(entity)
    columns = tuple((key, copy.deepcopy(entity.__dict__.get(key))) for key in [p.key for p in mapper.column_attrs])
    if depth > 8:
        return columns
    related: list[tuple[str, Any]] = []
    for rel in mapper.relationships:
        value = entity.__dict__.get(rel.key)
        if value is None:
            related.append((rel.key, None))
        elif isinstance(value, list | tuple):
            related.append((rel.key, tuple(state_of(v, depth + 1) for v in value)))
        elif isinstance(value, set | frozenset):
            related.append((rel.key, tuple(sorted((state_of(v, depth + 1) for v in value), key=repr))))
        else:
            related.append((rel.key, state_of(value, depth + 1)))
    return columns, tuple(related)


@dataclass(slots=True)
class Baseline:
    #: The committed version this workspace read (what the version check expects).
    version: Any
    #: The state last written within this workspace (at load, by a flush or a set-based change).
    state: Any
    #: Something was written since the load: the row must be written on commit.
    flushed: bool = False
    #: The row was inserted by a flush in this workspace (it is not in the store yet).
    inserted: bool = False


def duplicate_key(model: type[Any]) -> ConflictError:
    # Worded as the database's unique violation is: the constraint, never the key's value.
    table = mapper_of(model).base_mapper.local_table
    entity = model_traits(model).entity
    if isinstance(table, Table):
        return duplicate_key_error(table, entity=entity)
    return ConflictError(f"{entity} conflicts with existing data", entity=entity)  # mapped to a non-table


def id_of(key: Key) -> Any:
    return key[0] if len(key) == 1 else key


def version_of(model: type[Any], entity: object) -> Any:
    traits: ModelTraits = model_traits(model)
    return getattr(entity, traits.version) if traits.version else None


def _autoincrement_type(column: Any) -> bool:
    try:
        return column.type.python_type is int
    except NotImplementedError:
        return False


def autoincrements(column: Any) -> bool:
    return column.autoincrement in (True, "auto") and _autoincrement_type(column) and not column.foreign_keys


def call_default(default: Any) -> Any:
    if default is None:
        return MISSING
    if getattr(default, "is_scalar", False):
        return copy.copy(default.arg)
    if getattr(default, "is_callable", False):
        return default.arg(None)
    return MISSING


def apply_insert_defaults(model: type[Any], entity: Any) -> None:
    """Column defaults for attributes left unset, as the INSERT would apply them."""
    traits = model_traits(model)
    for prop in mapper_of(model).column_attrs:
        if entity.__dict__.get(prop.key) is not None:
            continue
        if prop.key == traits.version:
            setattr(entity, prop.key, 1)
            continue
        value = call_default(prop.columns[0].default)
        if value is not MISSING:
            setattr(entity, prop.key, value)


def columns_changed(model: type[Any], entity: Any, baseline: Baseline | None, committed: Any) -> bool:
    """Whether writing ``entity`` is an UPDATE of its row (a change of its columns or of its aggregate's parts)."""
    if baseline is not None:
        return versioned_change(model, state_of(entity), baseline.state)
    return committed is None or versioned_change(model, state_of(entity), state_of(committed))


def versioned_change(model: type[Any], state: Any, before: Any) -> bool:
    """A change the SQL unit of work would write with a version bump.

    The row's own columns, and for an aggregate root the objects its parts
    hold (as :mod:`keel.infrastructure.database.aggregate_lock` bumps the
    root for any change inside its aggregate); not its references to others.
    """
    if state[0] != before[0]:
        return True
    plan = plan_of(mapper_of(model))
    if plan is None or not plan.root or len(state) != 2 or len(before) != 2:
        return False
    return _parts(plan.parts, state[1]) != _parts(plan.parts, before[1])


def _parts(parts: tuple[str, ...], related: tuple[tuple[str, Any], ...]) -> list[Any]:
    return [value for key, value in related if key in parts]


def flushed_version(model: type[Any], baseline: Baseline) -> Any:
    """The version the row had at the last flush (what the UPDATE's WHERE would hold)."""
    traits = model_traits(model)
    if traits.version is None:
        return MISSING
    columns = baseline.state[0] if isinstance(baseline.state, tuple) and len(baseline.state) == 2 else ()
    return dict(columns).get(traits.version, MISSING)


def apply_update_defaults(model: type[Any], entity: Any, now: Any, previous: Any = MISSING) -> None:
    """``version + 1`` and ``onupdate`` columns, as the UPDATE would apply them.

    Like SQLAlchemy's version counter, the new version is the one the row had
    (``previous``) plus one, whatever the entity's attribute says: an
    aggregate that bumps its own version by hand (Cosmic Python's habit)
    ends one higher, not two.
    """
    traits = model_traits(model)
    if traits.version is not None:
        base = getattr(entity, traits.version) if previous is MISSING or previous is None else previous
        setattr(entity, traits.version, (base or 0) + 1)
    for prop in mapper_of(model).column_attrs:
        if prop.key == traits.updated_at:
            setattr(entity, prop.key, now)
            continue
        onupdate = call_default(prop.columns[0].onupdate)
        if onupdate is not MISSING:
            setattr(entity, prop.key, onupdate)
