"""Hide soft-deleted rows from every ORM read, relationship loads included.

A ``do_orm_execute`` listener on :class:`~sqlalchemy.orm.Session` adds a
``with_loader_criteria(... deleted_at IS NULL)`` option to each ORM SELECT,
so the rule holds for repository queries, hand-written ``select(Model)``,
``session.get``, and lazy, selectin and joined relationship loads alike; a
WHERE clause added by the repository alone would miss the relationships.

Opt out per statement with the execution option ``include_deleted=True``::

    await session.execute(select(Product), execution_options={"include_deleted": True})

Refreshes and expired-attribute loads are never filtered: an entity already
in hand must stay loadable after it is soft-deleted.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Mapper, ORMExecuteState, Session, with_loader_criteria
from sqlalchemy.orm.interfaces import ORMOption

from keel.infrastructure.database.orm import DELETED_AT, SoftDeleteMixin

#: The execution option that turns the filter off for one statement.
INCLUDE_DELETED = "include_deleted"

#: Soft-delete classes that do not inherit SoftDeleteMixin (imperatively
#: mapped domain classes, ``soft_delete_column()`` in a ``__table__``):
#: class -> attribute name.
_OTHERS: dict[type[Any], str] = {}
_options: tuple[ORMOption, ...] | None = None


@event.listens_for(Mapper, "mapper_configured")
def _register(mapper: Mapper[Any], cls: type[Any]) -> None:
    global _options
    if issubclass(cls, SoftDeleteMixin):
        return
    for prop in mapper.column_attrs:
        if any(column.info.get("keel") == DELETED_AT for column in prop.columns):
            _OTHERS[cls] = prop.key
            _options = None
            return


def _criteria() -> tuple[ORMOption, ...]:
    global _options
    if _options is None:
        options: list[ORMOption] = [
            with_loader_criteria(SoftDeleteMixin, lambda cls: cls.deleted_at.is_(None), include_aliases=True)
        ]
        for cls, key in _OTHERS.items():
            options.append(with_loader_criteria(cls, getattr(cls, key).is_(None), include_aliases=True))
        _options = tuple(options)
    return _options


@event.listens_for(Session, "do_orm_execute")
def _hide_soft_deleted(state: ORMExecuteState) -> None:
    if not state.is_select or state.is_column_load or state.execution_options.get(INCLUDE_DELETED, False):
        return
    state.statement = state.statement.options(*_criteria())


__all__ = ["INCLUDE_DELETED"]
