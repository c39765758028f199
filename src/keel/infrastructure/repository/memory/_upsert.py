"""``get_or_create`` and ``upsert`` on the in-memory twin, with the SQL repository's rules.

The same key checks (a unique rule must cover the key), the same keel
columns, the same answer for a soft-deleted row. What the twin cannot show is
the blocking: two open in-memory units of work creating one key do not wait
for each other as SQL transactions do: on a primary key the second one's
commit is a :class:`ConflictError` instead of a quiet read, and on another
unique key (which the twin does not check) both rows are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect

from keel.cross_cutting.error import ValidationError
from keel.domain.messages import utcnow
from keel.infrastructure.repository._checks import error
from keel.infrastructure.repository._insert_many import new_from_mapping
from keel.infrastructure.repository._unique import hidden_conflict, unique_key
from keel.infrastructure.repository._upsert import refuse_keel_columns
from keel.infrastructure.repository.memory._rows import READ_AT, identity_of

if TYPE_CHECKING:
    from keel.infrastructure.repository.memory.repository import InMemoryRepository


async def get_or_create(
    repo: InMemoryRepository[Any], defaults: Mapping[str, Any] | None, keys: Mapping[str, Any]
) -> tuple[Any, bool]:
    """The twin of :meth:`SqlAlchemyRepository.get_or_create`."""
    if not keys:
        raise ValidationError("get_or_create needs the key", errors=[error("keys", "give at least one field=value")])
    unique = unique_key(repo.model, keys, loc="keys")
    values = {**(defaults or {}), **keys}
    refuse_keel_columns(repo, values, "defaults")
    found = await repo.one_or_none(repo.select(**keys))
    if found is not None:
        return found, False
    if repo.traits.deleted_at is not None and not unique.where and await repo.exists(include_deleted=True, **keys):
        raise hidden_conflict(repo.traits.entity, unique)
    entity = new_from_mapping(repo.model, values)
    repo.add(entity)
    repo.workspace.flush()  # SQL writes the row at once
    return entity, True


async def upsert(repo: InMemoryRepository[Any], entity: Any, conflict: Sequence[str] | None) -> Any:
    """The twin of :meth:`SqlAlchemyRepository.upsert`."""
    repo._check_type(entity)
    if READ_AT in entity.__dict__ or any(held is entity for held in repo.workspace.identity.values()):
        raise ValidationError(
            "upsert takes a new entity (not one loaded or added already)",
            errors=[error("entity", "expected a new, unsaved entity")],
        )
    traits = repo.traits
    unique = unique_key(repo.model, conflict or traits.primary_key, loc="conflict")
    keel = {traits.version, traits.created_at, traits.updated_at}
    given = {
        prop.key: entity.__dict__[prop.key]
        for prop in inspect(repo.model).column_attrs
        if prop.key in entity.__dict__ and prop.key not in keel
    }
    for name in traits.primary_key:
        if given.get(name) is None:
            given.pop(name, None)
    missing = [name for name in unique.attributes if given.get(name) is None]
    if missing:
        raise ValidationError(
            "upsert needs the conflict columns set", errors=[error("entity", f"{name} is not set") for name in missing]
        )
    # A partial unique index covers live rows only; a full key covers soft-deleted rows too.
    soft = traits.deleted_at is not None and not unique.where
    match = {name: given[name] for name in unique.attributes}
    held = await repo.list(include_deleted=True, **match) if soft else await repo.list(**match)
    if not held:
        stored = new_from_mapping(repo.model, given)
        repo.add(stored)
        repo.workspace.flush()
        return stored
    row = held[0]
    changes = {k: v for k, v in given.items() if k not in unique.attributes and k not in traits.primary_key}
    if traits.deleted_at is not None:
        changes.setdefault(traits.deleted_at, None)
    key = identity_of(repo.model, row)
    repo.workspace.set_row(repo.model, key, changes, utcnow())
    stored = repo.workspace.load(repo.model, key)
    repo.mark_seen(stored)
    return stored
