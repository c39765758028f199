"""``get_or_create`` and ``upsert`` on SQL: ``INSERT ... ON CONFLICT``, safe under concurrency.

Both run one ``INSERT ... ON CONFLICT`` (PostgreSQL and SQLite share the
syntax) so two racing callers never both insert and never see an
``IntegrityError``: on PostgreSQL the second INSERT waits for the first
transaction and then does nothing (or updates); on SQLite writers are
serialised by the database lock. The row is then loaded through the ORM, so
the entity returned is attached to the unit of work's session and seen.

keel's columns are written here, since no flush runs: ``version`` 1 and both
timestamps on insert; on ``upsert``'s update ``version + 1`` and
``updated_at``, ``created_at`` kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect
from sqlalchemy.dialects import postgresql, sqlite

from keel.cross_cutting.error import ConfigurationError, ConflictError, ValidationError
from keel.domain.messages import utcnow
from keel.infrastructure.cache._entities import entity_guard, model_name
from keel.infrastructure.cache._tracking import changes_of
from keel.infrastructure.database._translate import translating
from keel.infrastructure.repository._checks import error
from keel.infrastructure.repository._sorting import column_attribute
from keel.infrastructure.repository._unique import hidden_conflict, unique_key

if TYPE_CHECKING:
    from keel.infrastructure.repository._base import RepositoryBase
    from keel.infrastructure.repository.sqlalchemy import SqlAlchemyRepository

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def _insert(repo: SqlAlchemyRepository[Any], table: Any) -> tuple[Any, str]:
    dialect = repo.session.get_bind(mapper=inspect(repo.model)).dialect.name
    factory = _INSERTS.get(dialect)
    if factory is None:
        raise ConfigurationError(f"get_or_create and upsert need PostgreSQL or SQLite, not {dialect}")
    return factory(table), dialect


def _column_values(model: type[Any], values: Mapping[str, Any], *, loc: str) -> dict[str, Any]:
    """Attribute values keyed by their column's key, names checked against the model."""
    return {column_attribute(model, name, loc=loc).property.columns[0].key: v for name, v in values.items()}


def _keel_values(repo: SqlAlchemyRepository[Any], now: Any) -> dict[str, Any]:
    traits = repo.traits
    fixed: dict[str, Any] = {name: now for name in (traits.created_at, traits.updated_at) if name}
    if traits.version is not None:
        fixed[traits.version] = 1
    return _column_values(repo.model, fixed, loc="entity")


def refuse_keel_columns(repo: RepositoryBase[Any], values: Mapping[str, Any], loc: str) -> None:
    traits = repo.traits
    for name in (traits.version, traits.created_at, traits.updated_at):
        if name is not None and name in values:
            raise ValidationError(
                f"{name} is set by keel", errors=[error(loc, f"{name} is set by keel, not by the caller")]
            )


async def get_or_create(
    repo: SqlAlchemyRepository[Any], defaults: Mapping[str, Any] | None, keys: Mapping[str, Any]
) -> tuple[Any, bool]:
    """The body of :meth:`SqlAlchemyRepository.get_or_create` (documented there)."""
    if not keys:
        raise ValidationError("get_or_create needs the key", errors=[error("keys", "give at least one field=value")])
    unique = unique_key(repo.model, keys, loc="keys")
    defaults = dict(defaults or {})
    refuse_keel_columns(repo, {**defaults, **keys}, "defaults")
    # A read first: the usual case (the row exists) then costs one SELECT and takes no lock.
    found = await repo.one_or_none(repo.select(**keys))
    if found is not None:
        return found, False
    table = inspect(repo.model).local_table
    insert, dialect = _insert(repo, table)
    row = {**_keel_values(repo, utcnow()), **_column_values(repo.model, {**defaults, **keys}, loc="defaults")}
    stmt = insert.values(row).on_conflict_do_nothing(
        index_elements=list(unique.columns), index_where=unique.index_where(dialect)
    )
    with translating(entity=repo.traits.entity):
        result: Any = await repo.session.execute(stmt)  # a CursorResult: an INSERT has a rowcount
        created = result.rowcount == 1
    entity = await repo.one_or_none(repo.select(**keys))
    if entity is None:
        if repo.traits.deleted_at is not None and await repo.exists(include_deleted=True, **keys):
            raise hidden_conflict(repo.traits.entity, unique)
        # The INSERT hit another unique rule (a key given in defaults, say), not the one on keys.
        raise ConflictError(
            f"the new {repo.traits.entity} conflicts with an existing row on another unique key",
            entity=repo.traits.entity,
        )
    return entity, created


async def upsert(repo: SqlAlchemyRepository[Any], entity: Any, conflict: Sequence[str] | None) -> Any:
    """The body of :meth:`SqlAlchemyRepository.upsert` (documented there)."""
    mapper = inspect(repo.model)
    state = inspect(entity)
    if not state.transient:
        raise ValidationError(
            "upsert takes a new entity (not one loaded or added already)",
            errors=[error("entity", "expected a new, unsaved entity")],
        )
    traits = repo.traits
    unique = unique_key(repo.model, conflict or traits.primary_key, loc="conflict")
    given = {prop.key: entity.__dict__[prop.key] for prop in mapper.column_attrs if prop.key in entity.__dict__}
    for name in (traits.version, traits.created_at, traits.updated_at):
        given.pop(name or "", None)  # keel's, whatever the new entity holds
    for name in traits.primary_key:
        if given.get(name) is None:
            given.pop(name, None)  # generated by the database
    missing = [name for name in unique.attributes if given.get(name) is None]
    if missing:
        raise ValidationError(
            "upsert needs the conflict columns set", errors=[error("entity", f"{name} is not set") for name in missing]
        )
    now = utcnow()
    table = mapper.local_table
    insert, dialect = _insert(repo, table)
    row = {**_keel_values(repo, now), **_column_values(repo.model, given, loc="entity")}
    conflict_columns = {c.key for c in unique.columns}
    changes: dict[str, Any] = {
        key: insert.excluded[key]
        for key in _column_values(repo.model, given, loc="entity")
        if key not in conflict_columns and key not in {c.key for c in table.primary_key.columns}
    }
    if traits.updated_at is not None:
        changes[_column_values(repo.model, {traits.updated_at: None}, loc="entity").popitem()[0]] = now
    if traits.version is not None:
        version = getattr(repo.model, traits.version).property.columns[0]
        changes[version.key] = version + 1
    if traits.deleted_at is not None:
        # The row becomes what the entity says: a soft-deleted row under a full unique key is restored.
        deleted = getattr(repo.model, traits.deleted_at).property.columns[0]
        changes.setdefault(deleted.key, None)
    pk = list(table.primary_key.columns)
    stmt = (
        insert.values(row)
        .on_conflict_do_update(
            index_elements=list(unique.columns), index_where=unique.index_where(dialect), set_=changes
        )
        .returning(*pk)
    )
    with translating(entity=traits.entity):
        key = tuple((await repo.session.execute(stmt)).one())
    written = changes_of(repo.session)
    if written is not None:
        # An INSERT counts as new rows only; this one may have updated a row a cache holds.
        written.entities.add(entity_guard(model_name(mapper), key))
    stored = await repo.one_or_none(
        repo.select(
            *(c == v for c, v in zip(pk, key, strict=True)), include_deleted=traits.deleted_at is not None
        ).execution_options(populate_existing=True)
    )
    if stored is None:  # pragma: no cover - the row was just written in this transaction
        raise ConflictError(f"the upserted {traits.entity} could not be read back", entity=traits.entity)
    return stored
