"""Version checks for the DELETEs that SQLAlchemy leaves unverified.

SQLAlchemy compares the rows a versioned DELETE matched with the rows it
expected only when the dialect reports reliable counts for batched statements
(``supports_sane_multi_rowcount``) or when the flush deletes exactly one row
of the table. asyncpg reports no such counts, so a flush deleting two or more
rows of one table would not notice that someone else had changed them: the
commit succeeds and their rows survive. (Versioned UPDATEs are always run and
counted row by row, so they are not affected.)

Before such a flush emits its DELETEs, this module locks the rows it is
about to delete (``SELECT ... FOR UPDATE``, one statement per table and flush)
and compares their versions with the ones the session holds. A row that
changed or vanished raises :class:`StaleRowsError`, a ``StaleDataError``, as
SQLAlchemy does for one row; the unit of work turns it into
``ConcurrencyError`` naming the rows. The locks are the ones the DELETEs would
take anyway.

The listeners (installed by :func:`keel.infrastructure.database.listeners.install`)
apply to every session (inside a unit of work or not, whichever way the rows
were deleted: ``repository.hard_delete``, ``session.delete``, a cascade or a
delete-orphan) and return at once on dialects whose counts SQLAlchemy trusts
(SQLite, psycopg).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy import CHAR, NCHAR, ColumnElement, select, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.orm import InstanceState, Mapper, Session, UOWTransaction
from sqlalchemy.orm.attributes import instance_state

from keel.infrastructure.database._keel_session import is_keel_session
from keel.infrastructure.database.stale_errors import StaleRowsError as StaleRowsError

#: ``session.info`` key: a weak reference to the flush in progress.
_FLUSH = "keel.flush"
#: ``UOWTransaction.attributes`` key: the states whose DELETE this module has handled.
_HANDLED = "keel.versioned_deletes"
#: Rows locked per statement (PostgreSQL takes at most 32767 parameters).
_CHUNK = 1000


def remember_flush(session: Session, flush_context: UOWTransaction, _instances: Any) -> None:
    """``before_flush``: keep the flush in reach of the ``before_delete`` check."""
    if not is_keel_session(session):
        return  # then its deletes are not looked at either (``_flush_of`` finds no flush)
    # A weak reference: a flush that failed must not keep its states alive.
    session.info[_FLUSH] = weakref.ref(flush_context)


def lock_and_check_versions(mapper: Mapper[Any], connection: Connection, target: Any) -> None:
    """``before_delete``: lock and version-check every row of ``target``'s batch (see the module docstring)."""
    column = mapper.version_id_col
    dialect = connection.dialect
    if column is None or dialect.supports_sane_multi_rowcount or not dialect.supports_sane_rowcount:
        return
    if not mapper.base_mapper.confirm_deleted_rows:
        return
    state = instance_state(target)
    flush = _flush_of(state)
    if flush is None:
        return
    handled: set[InstanceState[Any]] = flush.attributes.setdefault(_HANDLED, set())
    if state in handled:
        return
    # Every row of this version column the flush deletes: SQLAlchemy batches
    # them per table, and checks the count only for a batch of one.
    # Grouped by the base mapper: rows of a class and of its subclasses go out
    # in one batch on the base table.
    base = mapper.base_mapper
    group = [
        other
        for other, (is_delete, list_only) in flush.states.items()
        if is_delete and not list_only and other.mapper.base_mapper is base and other.mapper.version_id_col is not None
    ]
    handled.update(group)
    if len(group) > 1:
        _check(connection, base, base.version_id_col if base.version_id_col is not None else column, group)


def _flush_of(state: InstanceState[Any]) -> UOWTransaction | None:
    session = state.session
    if session is None:
        return None
    ref = session.info.get(_FLUSH)
    return ref() if ref is not None else None


def _check(
    connection: Connection, mapper: Mapper[Any], column: ColumnElement[Any], group: list[InstanceState[Any]]
) -> None:
    primary_key = mapper.base_mapper.primary_key
    if any(key.table is not column.table for key in primary_key):
        return  # the version lives in another table than the key: not a layout keel produces
    normalise = _key_normaliser(primary_key)
    held: dict[tuple[Any, ...], Any] = {}
    #: The identity each normalised key was held under, to look the rows up by.
    identities: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for state in group:
        own_column = state.mapper.version_id_col
        if state.identity is None or own_column is None:
            continue
        version_key = state.mapper.get_property_by_column(own_column).key
        version = state.committed_state.get(version_key, state.dict.get(version_key))
        if version is not None:
            key = normalise(tuple(state.identity))
            held[key] = version
            identities[key] = tuple(state.identity)
    if not held:
        return
    found: dict[tuple[Any, ...], Any] = {}
    keys = list(identities.values())
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        where = (
            primary_key[0].in_([key[0] for key in chunk]) if len(primary_key) == 1 else tuple_(*primary_key).in_(chunk)
        )
        # Locked in key order, the order SQLAlchemy's own DELETEs take the
        # locks in, so this check cannot deadlock where plain deletes would not.
        stmt = select(*primary_key, column).where(where).order_by(*primary_key).with_for_update()
        rows = connection.execute(stmt)
        found.update((normalise(tuple(row[:-1])), row[-1]) for row in rows)
    stale = [(_identity(key), version) for key, version in held.items() if found.get(key) != version]
    if stale:
        raise StaleRowsError(column.table.description or "?", mapper.class_.__name__, stale, len(held))


def _key_normaliser(columns: Sequence[Any]) -> Any:
    """Keys compared as the database compares them.

    A fixed-width ``CHAR(n)`` value is padded with spaces to ``n``, and the
    padding does not count in comparisons: PostgreSQL returns ``'ab      '``
    for a key the session holds as ``'ab'`` (it inserted it), which is the
    same row. Trailing spaces are stripped from both sides for such columns.
    """
    padded = [isinstance(column.type, CHAR | NCHAR) for column in columns]
    if not any(padded):
        return lambda key: key

    def normalise(key: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(
            part.rstrip(" ") if pad and isinstance(part, str) else part for part, pad in zip(key, padded, strict=True)
        )

    return normalise


def _identity(key: tuple[Any, ...]) -> Any:
    return key[0] if len(key) == 1 else key
