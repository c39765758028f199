"""``insert_many``: the set-based INSERT path for bulk loads.

``add_many`` keeps every entity in the session, so later changes to them are
saved and versions are checked; that bookkeeping costs several microseconds
per object on flush, which dominates a 100,000-row load. ``insert_many``
builds plain rows instead (keel's columns filled in here, so the entities
learn their values without a round trip), sends them with SQLAlchemy's
insertmanyvalues batching and reads back only server-generated keys.

Every row carries every column (the generated key aside, when no row has
one): an executemany takes its column list from the first row, so rows with
different keys would otherwise lose values or fail. That is only correct when
keel can compute each missing value itself; models whose defaults only the
database or the ORM can produce (server defaults, SQL-expression defaults,
defaults that need the execution context, sequences on ordinary columns,
inheritance, mapper insert events) are "unsupported" and take the ORM path.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, inspect, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper

from keel.cross_cutting.error import ValidationError
from keel.domain.messages import utcnow
from keel.infrastructure.database._translate import translating
from keel.infrastructure.database.orm import model_traits
from keel.infrastructure.repository._checks import error
from keel.infrastructure.repository._sorting import column_attribute

if TYPE_CHECKING:
    from keel.infrastructure.repository._base import RepositoryBase
    from keel.infrastructure.repository.sqlalchemy import SqlAlchemyRepository


@dataclass(frozen=True, slots=True)
class BulkShape:
    """What ``insert_many`` needs to know about a model, computed once."""

    columns: tuple[str, ...]
    #: The table's column key for each attribute in :attr:`columns` (they differ in classical mappings).
    column_keys: tuple[str, ...]
    #: The single server-generated integer key to read back, if any.
    generated_key: str | None
    #: (attribute, ColumnDefault) for Python-side defaults filled in here.
    defaults: tuple[tuple[str, Any], ...]
    #: Why the set-based path cannot be used (None: it can).
    unsupported: str | None


_SHAPES: dict[type[Any], BulkShape] = {}


def bulk_shape(model: type[Any]) -> BulkShape:
    shape = _SHAPES.get(model)
    if shape is None:
        shape = _SHAPES[model] = _find_shape(model)
    return shape


def _find_shape(model: type[Any]) -> BulkShape:
    mapper: Mapper[Any] = inspect(model)
    traits = model_traits(model)
    columns = tuple(prop.key for prop in mapper.column_attrs)
    column_keys = tuple(prop.columns[0].key for prop in mapper.column_attrs)
    problems = []
    if mapper.inherits is not None or len(mapper.tables) != 1:
        problems.append("inheritance")
    if mapper.dispatch.before_insert or mapper.dispatch.after_insert:
        problems.append("mapper insert events")
    pk = list(mapper.primary_key)
    generated = None
    if len(pk) == 1 and pk[0].autoincrement in (True, "auto") and _is_int(pk[0]) and not pk[0].foreign_keys:
        generated = mapper.get_property_by_column(pk[0]).key
    defaults = []
    for prop in mapper.column_attrs:
        column: Any = prop.columns[0]
        if prop.key == traits.version:
            continue
        if prop.key == generated:
            # Left out of the rows when absent: the database (sequence,
            # identity, rowid) or Core (a Sequence default) supplies it.
            continue
        if column.server_default is not None:
            problems.append(f"server default on {prop.key}")
        default = column.default
        if default is None:
            continue
        if getattr(default, "is_scalar", False) or _zero_argument(default):
            defaults.append((prop.key, default))
        else:
            # A SQL expression, a sequence or a function of the execution
            # context: only the INSERT itself can compute it, per row.
            problems.append(f"SQL-side default on {prop.key}")
    unsupported = problems[0] if problems else None
    return BulkShape(columns, column_keys, generated, tuple(defaults), unsupported)


def carries_related(model: type[Any], entities: Iterable[Any]) -> bool:
    """Whether any entity holds related objects (a non-empty collection, or a parent/child set).

    Rows built from columns alone would drop them: the children would never
    be inserted and a child's foreign key to the parent it was given would
    stay NULL. Only the ORM's flush saves related objects and sets those keys.
    """
    keys = [rel.key for rel in inspect(model).relationships]
    if not keys:
        return False
    for entity in entities:
        state = entity.__dict__
        for key in keys:
            value = state.get(key)
            if value is None or (isinstance(value, Collection) and not value):
                continue
            return True
    return False


def _is_int(column: Any) -> bool:
    try:
        return bool(column.type.python_type is int)
    except NotImplementedError:
        return False


def _zero_argument(default: Any) -> bool:
    """A callable default SQLAlchemy wrapped from a zero-argument function (callable without context)."""
    return bool(getattr(default, "is_callable", False)) and getattr(default.arg, "__wrapped__", None) is not None


def _default_value(default: Any) -> Any:
    return default.arg if getattr(default, "is_scalar", False) else default.arg(None)


class MixedKeys(ValueError):
    """Some rows carry the generated key and some do not."""


def _fixed_values(model: type[Any], now: Any) -> dict[str, Any]:
    """keel's columns for a new row: ``version`` 1 and both timestamps ``now``."""
    traits = model_traits(model)
    fixed = {name: now for name in (traits.created_at, traits.updated_at) if name}
    if traits.version is not None:
        fixed[traits.version] = 1
    return fixed


def _rows(model: type[Any], states: Iterable[dict[str, Any]], now: Any) -> tuple[list[dict[str, Any]], bool]:
    """Complete rows keyed by column from attribute dicts, which are filled in place.

    Returns the rows and whether the generated key was left out (no state
    had it); a mix of present and missing keys raises :class:`MixedKeys`.
    """
    shape = bulk_shape(model)
    fixed = _fixed_values(model, now)
    defaults = [(name, default) for name, default in shape.defaults if name not in fixed]
    pairs = list(zip(shape.columns, shape.column_keys, strict=True))
    key = shape.generated_key
    without_key = [(a, c) for a, c in pairs if a != key]
    rows = []
    missing_keys = 0
    for state in states:
        for name, value in fixed.items():
            if state.get(name) is None:
                state[name] = value
        for name, default in defaults:
            if name not in state:
                state[name] = _default_value(default)
        if key is not None and state.get(key) is None:
            rows.append({c: state.get(a) for a, c in without_key})
            missing_keys += 1
        else:
            rows.append({c: state.get(a) for a, c in pairs})
    if missing_keys and missing_keys != len(rows):
        raise MixedKeys("some rows have keys and some do not")
    return rows, bool(missing_keys)


def entity_rows(model: type[Any], entities: Iterable[Any], now: Any) -> tuple[list[dict[str, Any]], bool]:
    """One row per entity, keel's columns and Python defaults filled in on the entity too.

    Returns the rows and whether the key must be read back (every entity
    lacks it); a mix of given and missing keys raises :class:`MixedKeys`.
    """
    return _rows(model, (entity.__dict__ for entity in entities), now)


def attribute_rows(model: type[Any], rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mappings checked against the model: unknown attribute names are a ValidationError."""
    columns = frozenset(bulk_shape(model).columns)
    checked = []
    for row in rows:
        # One set operation per row; the names are looked at one by one only to report one.
        if not columns.issuperset(row):
            for name in row:
                if name not in columns:
                    column_attribute(model, name, loc="items")
        checked.append(dict(row))
    return checked


def mapping_rows(model: type[Any], rows: Iterable[Mapping[str, Any]], now: Any) -> list[dict[str, Any]]:
    """Rows keyed by attribute name, completed as entity rows are and re-keyed by column.

    Every row gets every column, whatever keys each mapping had: missing
    keel columns and Python defaults are filled in, other missing columns
    are NULL. Unknown names are a ValidationError; a mix of rows with and
    without the generated key raises :class:`MixedKeys`.
    """
    completed, _ = _rows(model, attribute_rows(model, rows), now)
    return completed


async def execute_insert(
    session: AsyncSession,
    model: type[Any],
    rows: list[dict[str, Any]],
    read_key: str | None,
    entities: Sequence[Any] = (),
) -> int:
    """INSERT ``rows`` into ``model``'s table; with ``read_key``, put the generated keys on ``entities``.

    A Core INSERT on the table: the ORM's per-row bulk bookkeeping buys
    nothing here, as the entities are not tracked. Pending ORM changes (a
    parent row, say) are flushed first, as an ORM statement would.
    """
    mapper = inspect(model)
    table: Any = mapper.local_table
    with translating(entity=model_traits(model).entity):
        await session.flush()
        if read_key is None:
            await session.execute(insert(table), rows)
            return len(rows)
        column = table.c[mapper.get_property(read_key).columns[0].key]
        keys = await reserve_keys(session, table, column, len(rows))
        if keys is not None:
            for row, key in zip(rows, keys, strict=True):
                row[column.key] = key
            await session.execute(insert(table), rows)
        else:
            result = await session.execute(insert(table).returning(column, sort_by_parameter_order=True), rows)
            keys = list(result.scalars().all())
    for entity, key in zip(entities, keys, strict=True):
        entity.__dict__[read_key] = key
    return len(keys)


async def reserve_keys(session: AsyncSession, table: Any, column: Any, count: int) -> list[Any] | None:
    """On PostgreSQL, take ``count`` values of the key's sequence in one query.

    Sending the keys with the rows spares the INSERT its ``RETURNING`` and the
    re-ordering SQLAlchemy needs to match returned keys to rows, which is what
    keeps ``insert_many`` level with a hand-written INSERT. Elsewhere (or
    without a sequence) None: read them back instead.
    """
    bind = session.bind
    if bind is None or bind.dialect.name != "postgresql":
        return None
    identity = getattr(column, "identity", None)
    if identity is not None and identity.always:
        return None  # GENERATED ALWAYS refuses explicit values: read the keys back instead
    sequence = await session.scalar(
        text("SELECT pg_get_serial_sequence(:table, :column)"),
        # The table name is parsed as SQL (case-folded unless quoted); the column is taken literally.
        {"table": bind.dialect.identifier_preparer.format_table(table), "column": column.name},
    )
    if sequence is None:
        return None
    # One array instead of `count` rows: decoding 100,000 result rows would
    # cost more than the INSERT saves.
    reserved = await session.scalar(
        text("SELECT array_agg(nextval(CAST(:sequence AS regclass))) FROM generate_series(1, :count)"),
        {"sequence": sequence, "count": count},
    )
    return list(reserved)


async def insert_many(repo: SqlAlchemyRepository[Any], items: Iterable[Any] | Iterable[Mapping[str, Any]]) -> int:
    """The body of :meth:`SqlAlchemyRepository.insert_many` (documented there)."""
    batch = list(items)
    if not batch:
        return 0
    model, session, traits = repo.model, repo.session, repo.traits
    entities, mappings = insert_items(repo, batch)
    shape = bulk_shape(model)
    if shape.unsupported or carries_related(model, entities):
        if not entities:
            entities = [new_from_mapping(model, row) for row in attribute_rows(model, mappings)]
        repo.add_many(entities)
        with translating(entity=traits.entity):
            await session.flush()
        return len(entities)
    try:
        if not entities:
            return await execute_insert(session, model, mapping_rows(model, mappings, utcnow()), None)
        rows, read_keys = entity_rows(model, entities, utcnow())
    except MixedKeys:
        raise ValidationError(
            f"insert_many needs every {traits.entity} with a key, or every one without",
            errors=[error("items", "some entities have keys and some do not")],
        ) from None
    inserted = await execute_insert(session, model, rows, shape.generated_key if read_keys else None, entities)
    for entity in entities:
        repo.mark_seen(entity)
    return inserted


def insert_items(repo: RepositoryBase[Any], batch: list[Any]) -> tuple[list[Any], list[Mapping[str, Any]]]:
    """``insert_many``'s items as (entities, mappings), one of them empty: entities of the model, or mappings.

    Shared by the SQL repository and its in-memory twin, so both refuse the same input.
    """
    entities = [item for item in batch if not isinstance(item, Mapping)]
    mappings = [item for item in batch if isinstance(item, Mapping)]
    if entities and mappings:
        raise ValidationError(
            "insert_many takes entities or mappings, not both",
            errors=[error("items", "mixed entities and mappings")],
        )
    for entity in entities:
        repo._check_type(entity)
    return entities, mappings


def new_from_mapping(model: type[Any], row: Mapping[str, Any]) -> Any:
    """An instance with ``row``'s attribute values, built without calling ``__init__``."""
    # The class manager builds the instance without calling __init__, so
    # imperatively mapped domain classes with their own constructors work.
    entity = inspect(model).class_manager.new_instance()
    for name, value in row.items():
        setattr(entity, name, value)
    return entity
