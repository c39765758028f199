"""``Workspace``: one unit of work's transaction on an :class:`InMemoryStore`.

It hands out copies (one per row, an identity map), sees its own
uncommitted changes, writes them at an autoflush as SQLAlchemy's does, and on
commit applies them atomically, with the same optimistic version check,
``version`` bump and timestamps as the SQLAlchemy unit of work.
"""

from __future__ import annotations

import copy
import weakref
from typing import TYPE_CHECKING, Any

from keel.cross_cutting.error import ConcurrencyError, ConflictError
from keel.domain.messages import utcnow
from keel.infrastructure.database._translate import attached_elsewhere, pending_rollback_error
from keel.infrastructure.database.orm import model_traits
from keel.infrastructure.database.values import check_entity_values
from keel.infrastructure.repository.memory._rows import (
    MISSING,
    OWNER,
    READ_AT,
    Baseline,
    Key,
    RowId,
    apply_insert_defaults,
    apply_update_defaults,
    autoincrements,
    call_default,
    columns_changed,
    duplicate_key,
    flushed_version,
    id_of,
    identity_of,
    mapper_of,
    state_of,
    version_of,
    versioned_change,
)

if TYPE_CHECKING:
    from keel.infrastructure.repository.memory.store import InMemoryStore


class Workspace:
    """One unit of work's view of a store: an identity map plus pending changes."""

    def __init__(self, store: InMemoryStore) -> None:
        self.store = store
        self.identity: dict[RowId, Any] = {}
        self._baselines: dict[RowId, Baseline] = {}
        self._removed: dict[RowId, Any] = {}
        #: A flush or commit failed: as with a session after a failed flush, only a rollback helps.
        self.failed = False
        self.closed = False
        #: Rows a set-based write changed while this workspace held a stale
        #: copy of them: (the row as written, the committed version it was written over).
        self._set_rows: dict[RowId, tuple[Any, Any]] = {}
        #: Rows deleted by a set-based DELETE: the committed version they were deleted at.
        self._set_deleted: dict[RowId, Any] = {}

    def reset(self) -> None:
        """Forget everything uncommitted (a rollback)."""
        self.identity.clear()
        self._baselines.clear()
        self._removed.clear()
        self._set_rows.clear()
        self._set_deleted.clear()
        self.failed = False

    def close(self) -> None:
        """The unit of work ended: its entities may join another one."""
        self.closed = True

    def _require_usable(self) -> None:
        if self.failed:
            raise pending_rollback_error()

    def _claim(self, entity: Any, entity_name: str) -> None:
        """Make ``entity`` this workspace's; refuse one that another open workspace holds."""
        owner_ref = entity.__dict__.get(OWNER)
        owner = owner_ref() if owner_ref is not None else None
        if owner is not None and owner is not self and not owner.closed:
            raise attached_elsewhere(entity_name)
        entity.__dict__[OWNER] = weakref.ref(self)

    # --- reading ---------------------------------------------------------------

    def keys(self, model: type[Any]) -> list[Key]:
        """Every live key of ``model`` in this workspace, committed rows first."""
        table = self.store.table(model)
        keys = [k for k in table if (model, k) not in self._removed]
        keys.extend(k for (m, k) in self.identity if m is model and k not in table)
        return keys

    def peek(self, model: type[Any], key: Key) -> Any:
        """The row as this workspace sees it, without copying it (None if absent)."""
        row_id = (model, key)
        if row_id in self._removed:
            return None
        found = self.identity.get(row_id)
        return found if found is not None else self.store.table(model).get(key)

    def load(self, model: type[Any], key: Key) -> Any:
        """The workspace's own copy of the row (one per key), or None."""
        row_id = (model, key)
        if row_id in self._removed:
            return None
        found = self.identity.get(row_id)
        if found is not None:
            if self.failed and row_id not in self._baselines:
                # Never flushed, so not in a session's identity map: SQL would query, and fail.
                raise pending_rollback_error()
            return found
        committed = self.store.table(model).get(key)
        if committed is None:
            return None
        entity = copy.deepcopy(committed)
        version = version_of(model, entity)
        entity.__dict__[READ_AT] = version
        entity.__dict__[OWNER] = weakref.ref(self)
        self.identity[row_id] = entity
        self._baselines[row_id] = Baseline(version, state_of(entity))
        return entity

    def current(self, model: type[Any], key: Key) -> Any:
        """The row as a statement in this transaction sees it (None if absent), without copying it.

        Rows this workspace wrote are its copies; a row it only read is the
        committed row, which differs from the copy handed out when someone
        else has changed it since. Set-based writes match and change this
        row, as SQL does, not the (possibly stale) copy.
        """
        row_id = (model, key)
        if row_id in self._removed:
            return None
        written = self._set_rows.get(row_id)
        if written is not None:
            return written[0]
        entity = self.identity.get(row_id)
        baseline = self._baselines.get(row_id)
        if entity is not None and (baseline is None or baseline.flushed or baseline.inserted):
            return entity
        return self.store.table(model).get(key)

    def set_row(self, model: type[Any], key: Key, values: dict[str, Any], now: Any) -> None:
        """A set-based UPDATE of one row the statement matched (after a :meth:`flush`).

        When this workspace holds a stale copy, the row is changed where it
        is (written on commit if nobody changed it meanwhile) and the copy
        takes the values on top of its own version, as SQLAlchemy's
        synchronisation does: it stays stale, so saving it raises.
        """
        entity = self.load(model, key)
        row_id = (model, key)
        baseline = self._baselines.get(row_id)
        committed = self.store.table(model).get(key)
        stale = (
            baseline is not None
            and not (baseline.flushed or baseline.inserted)
            and committed is not None
            and (row_id in self._set_rows or state_of(committed)[0] != baseline.state[0])
        )
        if not stale:
            self.apply_set(model, entity, values, now)
            return
        assert baseline is not None
        written = self._set_rows.get(row_id)
        if written is None:
            written = self._set_rows[row_id] = (copy.deepcopy(committed), version_of(model, committed))
        for target in (written[0], entity):
            for name, value in values.items():
                setattr(target, name, value)
            apply_update_defaults(model, target, now)
        baseline.state = state_of(entity)

    def delete_row(self, model: type[Any], key: Key) -> None:
        """A set-based DELETE of one row the statement matched: no check of the version the copy holds."""
        row = self.current(model, key)
        entity = self.load(model, key)
        self._set_deleted[(model, key)] = version_of(model, row)
        self.remove(model, entity)

    # --- writing ---------------------------------------------------------------

    def add(self, model: type[Any], entity: Any) -> None:
        traits = model_traits(model)
        mapper = mapper_of(model)
        pk = list(mapper.primary_key)
        if len(pk) == 1 and getattr(entity, traits.primary_key[0], None) is None:
            if autoincrements(pk[0]):
                setattr(entity, traits.primary_key[0], self.store.next_id(model))
            elif pk[0].default is not None:  # a client-side key default (uuid7): SQL applies it at flush
                setattr(entity, traits.primary_key[0], call_default(pk[0].default))
        key = identity_of(model, entity)
        if any(part is None for part in key):
            raise ConflictError(f"{traits.entity} needs a primary key", entity=traits.entity)
        row_id = (model, key)
        current = self.identity.get(row_id)
        if current is entity:
            return
        self._claim(entity, traits.entity)
        if current is not None:
            raise ConflictError(f"{traits.entity} {key!r} is already in this unit of work", entity=traits.entity)
        self._removed.pop(row_id, None)
        self.identity[row_id] = entity

    def flush(self) -> None:
        """Write pending changes as SQLAlchemy's autoflush does before every query.

        New rows get their insert defaults (``version`` 1), changed rows one
        ``version`` bump and a new ``updated_at``, now rather than on commit,
        so that a change, a query and another change make two UPDATEs here
        as they do in SQL. What stays for commit: the version check, the
        duplicate-key check, and making anything visible to other units of work.
        """
        self._require_usable()
        now = utcnow()
        for row_id, entity in self.identity.items():
            model, key = row_id
            baseline = self._baselines.get(row_id)
            if baseline is not None:
                state = state_of(entity)
                if state == baseline.state:
                    continue
                check_entity_values(entity, changed_only=False)
                if versioned_change(model, state, baseline.state):
                    apply_update_defaults(model, entity, now, previous=flushed_version(model, baseline))
                    state = state_of(entity)
                baseline.state, baseline.flushed = state, True
                continue
            committed = self.store.table(model).get(key)
            held = entity.__dict__.get(READ_AT, MISSING)
            if committed is None:
                check_entity_values(entity, changed_only=False)
                apply_insert_defaults(model, entity)
                self._baselines[row_id] = Baseline(
                    version_of(model, entity), state_of(entity), flushed=True, inserted=True
                )
            elif held is not MISSING:
                # A copy from an earlier unit of work, added back: an UPDATE if it differs.
                if columns_changed(model, entity, None, committed):
                    apply_update_defaults(model, entity, now, previous=held)
                self._baselines[row_id] = Baseline(held, state_of(entity), flushed=True)
            else:
                # A new row whose key is taken: the INSERT of SQL's autoflush fails here,
                # and leaves the transaction to be rolled back.
                self.failed = True
                raise duplicate_key(model)

    def apply_set(self, model: type[Any], entity: Any, values: dict[str, Any], now: Any) -> None:
        """A set-based change, applied at once as the SQL statement would be (after a :meth:`flush`)."""
        row_id = (model, identity_of(model, entity))
        if row_id not in self._baselines:
            apply_insert_defaults(model, entity)
        for name, value in values.items():
            setattr(entity, name, value)
        apply_update_defaults(model, entity, now)
        baseline = self._baselines.get(row_id)
        if baseline is not None:
            baseline.state = state_of(entity)
            baseline.flushed = True

    def detach(self, model: type[Any], entity: Any) -> None:
        """Keep a private copy of a just-added entity, so later changes to ``entity`` are not saved."""
        row_id = (model, identity_of(model, entity))
        self.identity[row_id] = copy.deepcopy(entity)

    def remove(self, model: type[Any], entity: Any) -> None:
        row_id = (model, identity_of(model, entity))
        if self.identity.get(row_id) is not entity:
            self._claim(entity, model_traits(model).entity)
        self.identity.pop(row_id, None)
        self._removed[row_id] = entity

    def commit(self) -> None:
        """Apply every change atomically, or raise and apply nothing.

        Every check runs before anything reaches the store: the values, then
        the versions of deleted rows, of rows set-based statements changed,
        and of written rows.
        """
        self._require_usable()
        self._check_values()
        now = utcnow()
        deletes = self._checked_deletes()
        set_rows = self._checked_set_rows()
        writes = self._checked_writes()
        for row_id in deletes:
            self.store.table(row_id[0]).pop(row_id[1], None)
        for row_id, row in set_rows:
            self.store.table(row_id[0])[row_id[1]] = copy.deepcopy(row)
        for row_id, entity, is_new in writes:
            self._store(row_id, entity, is_new, now)
        self._removed.clear()
        self._set_rows.clear()
        self._set_deleted.clear()
        self.store.commits += 1

    def _check_values(self) -> None:
        for row_id, entity in self.identity.items():
            # What the SQL flush checks before any statement (values.py); rows
            # an autoflush already wrote were checked then.
            baseline = self._baselines.get(row_id)
            if baseline is None or state_of(entity) != baseline.state:
                check_entity_values(entity, changed_only=False)

    def _checked_deletes(self) -> list[RowId]:
        """The rows the commit deletes, each checked against the version this workspace held."""
        deletes: list[RowId] = []
        for row_id, entity in self._removed.items():
            model, key = row_id
            committed = self.store.table(model).get(key)
            held = entity.__dict__.get(READ_AT, MISSING)
            baseline = self._baselines.get(row_id)
            if baseline is not None:
                held = baseline.version
            held = self._set_deleted.get(row_id, held)
            if committed is not None and held is not MISSING:
                self._check_version(model, key, committed, held)
            deletes.append(row_id)
        return deletes

    def _checked_set_rows(self) -> list[tuple[RowId, Any]]:
        """Rows set-based writes changed over a stale copy: still at the version they were written over."""
        for row_id, (_, version) in self._set_rows.items():
            committed = self.store.table(row_id[0]).get(row_id[1])
            if row_id not in self._removed and (committed is None or version_of(row_id[0], committed) != version):
                raise ConcurrencyError(entity=model_traits(row_id[0]).entity, id=id_of(row_id[1]), version=version)
        return [(row_id, row) for row_id, (row, _) in self._set_rows.items() if row_id not in self._removed]

    def _checked_writes(self) -> list[tuple[RowId, Any, bool]]:
        """(row, entity, is new) for every row the commit writes."""
        writes: list[tuple[RowId, Any, bool]] = []
        for row_id, entity in self.identity.items():
            is_new = self._checked_write(row_id, entity)
            if is_new is not None:
                writes.append((row_id, entity, is_new))
        return writes

    def _checked_write(self, row_id: RowId, entity: Any) -> bool | None:
        """Whether the commit inserts the row (True), updates it (False) or leaves it (None); raises on a conflict."""
        model, key = row_id
        committed = self.store.table(model).get(key)
        baseline = self._baselines.get(row_id)
        if baseline is None:
            if committed is None:
                return True
            held = entity.__dict__.get(READ_AT, MISSING)
            if held is MISSING:
                raise duplicate_key(model)
            self._check_version(model, key, committed, held)
            return False
        if state_of(entity) == baseline.state and not baseline.flushed:
            return None
        if baseline.inserted:
            if committed is not None:
                raise duplicate_key(model)
            return False
        if committed is None:
            raise ConcurrencyError(entity=model_traits(model).entity, id=id_of(key), version=baseline.version)
        self._check_version(model, key, committed, baseline.version)
        return False

    def _store(self, row_id: RowId, entity: Any, is_new: bool, now: Any) -> None:
        """Write one checked row to the store, with the defaults its INSERT or UPDATE would apply."""
        model, key = row_id
        baseline = self._baselines.get(row_id)
        if is_new:
            apply_insert_defaults(model, entity)
        elif columns_changed(model, entity, baseline, self.store.table(model).get(key)):
            # Changed since the last write in this workspace: one more UPDATE.
            previous = flushed_version(model, baseline) if baseline is not None else entity.__dict__.get(READ_AT)
            apply_update_defaults(model, entity, now, previous=previous)
        stored = copy.deepcopy(entity)
        stored.__dict__.pop(READ_AT, None)
        stored.__dict__.pop(OWNER, None)
        self.store.table(model)[key] = stored
        version = version_of(model, entity)
        entity.__dict__[READ_AT] = version
        self._baselines[row_id] = Baseline(version, state_of(entity))

    def _check_version(self, model: type[Any], key: Key, committed: Any, held: Any) -> None:
        traits = model_traits(model)
        if traits.version is None:
            return
        if getattr(committed, traits.version) != held:
            raise ConcurrencyError(entity=traits.entity, id=id_of(key), version=held)
