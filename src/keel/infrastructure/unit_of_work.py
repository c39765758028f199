"""``SqlAlchemyUnitOfWork``: one ``AsyncSession`` and transaction per ``async with``.

Declare repositories as class annotations; each ``async with`` builds them
bound to its session::

    class AppUnitOfWork(SqlAlchemyUnitOfWork):
        products: ProductRepository

    async with AppUnitOfWork(session_factory) as uow:
        product = await uow.products.get("LAMP")
        ...
        await uow.commit()
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable
from itertools import chain
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.orm.exc import StaleDataError

from keel.cross_cutting.error import ConcurrencyError, DatabaseUnavailableError, UnitOfWorkError
from keel.domain.aggregate import AggregateRoot
from keel.domain.messages import DomainEvent
from keel.domain.ports import Cache
from keel.infrastructure.cache import bind_cache, use_cache
from keel.infrastructure.database._translate import translate_db_error
from keel.infrastructure.database.aggregate_lock import bumped_roots
from keel.infrastructure.database.read_only import (
    commit_driver,
    open_read_session,
    record_commit,
    watch_commit_position,
)
from keel.infrastructure.database.replicas import router_of
from keel.infrastructure.database.stale_errors import StaleRowsError
from keel.infrastructure.declared_repositories import DeclaredRepositories
from keel.infrastructure.repository.soft_delete import hide_soft_deleted
from keel.service_layer.participants import CommitParticipant, Participant
from keel.service_layer.unit_of_work import AbstractUnitOfWork

_STALE_TABLE = re.compile(r"on table '([^']+)'")
_logger = logging.getLogger("keel.unit_of_work")


class SqlAlchemyUnitOfWork(DeclaredRepositories, AbstractUnitOfWork):
    """Unit of work over an ``async_sessionmaker``.

    Works with the factory from :func:`keel.infrastructure.database.create_session_factory`
    or one built by hand (``expire_on_commit`` may be either value).
    ``participants`` write in (or react to) each commit; see
    :mod:`keel.service_layer.participants`. ``cache`` is read through by
    repositories that set ``cache_ttl`` and invalidated after each commit.


        :mod:`keel.service_layer.participants`.

    ``read_only=True`` makes a unit of work for queries: it reads from a
    replica when the factory has some (``create_session_factory(engine,
    replicas=...)``; the primary otherwise, or when it must to see this
    context's own commit), and refuses adding, flushing changes, deleting,
    set-based writes and ``commit()`` with a :class:`UnitOfWorkError` before
    anything reaches the database. See ``docs/scaling.md``.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_before_commit" in cls.__dict__:
            warnings.warn(
                f"{cls.__qualname__}._before_commit is deprecated: give the unit of work a commit "
                "participant with an after_flush phase instead (participants=[...] or commit_participants)",
                DeprecationWarning,
                stacklevel=2,
            )

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        participants: Iterable[CommitParticipant[Any]] = (),
        cache: Cache | None = None,
        read_only: bool = False,
    ) -> None:
        super().__init__(participants=participants)
        self.session_factory = session_factory
        self._session: AsyncSession | None = None
        #: The cache repositories with ``cache_ttl`` read through; see docs/cache.md.
        self.cache: Cache | None = None
        if cache is not None:
            use_cache(self, cache)
        #: Reads only, from a replica when there is one (see the class docstring).
        self.read_only = read_only

    @property
    def session(self) -> AsyncSession:
        """The session of the open unit of work."""
        if self._session is None:
            raise UnitOfWorkError(f"{type(self).__name__} is not open (use `async with uow:`)")
        return self._session

    # --- template-method hooks ----------------------------------------------

    async def _begin(self) -> None:
        # expire_on_commit=False whatever the factory says: an AsyncSession
        # cannot lazy-load an expired attribute, so reading an aggregate after
        # commit would fail with MissingGreenlet.
        if self.read_only:
            session = await open_read_session(self.session_factory, expire_on_commit=False)
        else:
            session = self.session_factory(expire_on_commit=False)
        # Queries the unit of work's code writes by hand hide soft-deleted
        # rows too, whoever built the factory.
        hide_soft_deleted(session)
        if self.cache is not None:
            bind_cache(session, self.cache)
        self._session = session
        for name, (repo_cls, model) in self._declared_repositories().items():
            setattr(self, name, self._build_repository(repo_cls, model, session))

    def _build_repository(self, repo_cls: type[Any], model: type[Any] | None, session: AsyncSession) -> Any:
        """Build one declared repository for this unit of work (see :class:`keel.domain.ports.UnitOfWorkRepository`)."""
        return repo_cls.for_unit_of_work(self, model)

    async def commit(self) -> None:
        """Make the work durable (see :meth:`AbstractUnitOfWork.commit`); refused when read-only."""
        if self.read_only:
            self._require_open("commit")
            raise UnitOfWorkError(
                f"{type(self).__name__} is read-only: it cannot commit (open it without read_only=True to write)",
                reason="read_only",
            )
        await super().commit()

    async def _commit(self, events: list[DomainEvent]) -> None:
        session = self.session
        held = _versioned_changes(session.sync_session)
        # With replicas, remember where this commit ends in the WAL, so that reads
        # after it in this context wait for a replica that has it (read-your-writes).
        position = None
        if router_of(self.session_factory) is not None:
            driver = await commit_driver(session)
            position = watch_commit_position(session, driver) if driver is not None else []
        legacy_hook = type(self)._before_commit is not SqlAlchemyUnitOfWork._before_commit
        try:
            if self.participants or legacy_hook:
                await self._before_flush(events)
                if legacy_hook or _has_after_flush(self.participants):
                    # Their rows are written after the aggregates' own changes.
                    await session.flush()
                    if legacy_hook:
                        await self._before_commit(session, events)
                    await self._after_flush(events)
            await session.commit()  # flushes first; one round through the greenlet instead of two
            if position is not None:
                record_commit(position)
        except StaleDataError as exc:
            raise _concurrency_error(exc, _with_bumped_roots(held, session.sync_session)) from exc
        except SQLAlchemyError as exc:
            translated = translate_db_error(exc)
            if translated is None:
                raise
            raise translated from exc

    async def _before_commit(self, session: AsyncSession, events: list[DomainEvent]) -> None:
        """Deprecated hook, run after the flush: use a participant's ``after_flush`` instead."""

    async def _rollback(self) -> None:
        session = self.session
        try:
            await session.rollback()
        except (SQLAlchemyError, OSError) as exc:
            # A connection the server killed cannot roll back: drop it, so the
            # unit of work can start again on a fresh one.
            raise await _dropped(session, exc, "rolled back") from exc

    async def _close(self) -> None:
        session, self._session = self._session, None
        self._drop_repositories()
        if session is not None:
            try:
                await session.close()
            except (SQLAlchemyError, OSError) as exc:
                # The rollback failed (a connection the server killed, say): drop
                # the connection instead of returning it to the pool half-open.
                raise await _dropped(session, exc, "closed") from exc

    def _close_needs_shield(self) -> bool:
        # No transaction, no connection: closing only expunges, without I/O.
        session = self._session
        return session is not None and session.sync_session.in_transaction()

    def _candidates(self) -> Iterable[AggregateRoot]:
        # Aggregates loaded by custom queries or relationships are in the
        # session without passing through a repository: count them as seen.
        # One pass over the session's states, without building its public
        # identity-map list and ``new`` set.
        seen = self._seen
        yield from seen.values()
        if self._session is None:
            return
        sync = self._session.sync_session
        for state in chain(sync.identity_map.all_states(), sync._new):
            obj = state.obj()
            if isinstance(obj, AggregateRoot) and id(obj) not in seen:
                yield obj


# --- helpers -------------------------------------------------------------------


async def _dropped(session: AsyncSession, exc: SQLAlchemyError | OSError, while_: str) -> Exception:
    """Invalidate ``session``'s connection after ``exc``; the keel error to raise for it."""
    try:
        await session.invalidate()
    except (SQLAlchemyError, OSError):
        # Already as dead as it gets; the original error is the one to report.
        _logger.debug("invalidating a failed session failed too", exc_info=True)
    translated = translate_db_error(exc) if isinstance(exc, SQLAlchemyError) else None
    return translated or DatabaseUnavailableError(f"the connection failed while the unit of work {while_}")


def _has_after_flush(participants: Iterable[CommitParticipant[Any]]) -> bool:
    """Whether a participant does something after the flush (else the commit need not flush separately)."""
    return any(getattr(type(p), "after_flush", None) is not Participant.after_flush for p in participants)


#: mapper -> (version attribute, table names), or None for an unversioned mapper.
_VERSIONING: dict[Mapper[Any], tuple[str, tuple[str, ...]] | None] = {}


def _versioning(mapper: Mapper[Any]) -> tuple[str, tuple[str, ...]] | None:
    try:
        return _VERSIONING[mapper]
    except KeyError:
        column = mapper.version_id_col
        info = None
        if column is not None:
            info = (mapper.get_property_by_column(column).key, tuple(sorted({t.name for t in mapper.tables})))
        _VERSIONING[mapper] = info
        return info


def _versioned_changes(session: Session) -> list[tuple[str, str, Any, Any]]:
    """(table, entity, identity, held version) for every versioned row about to change.

    Runs before every commit, so it reads the instance state directly rather
    than through ``state.attrs`` (which builds an object per attribute).
    """
    held = []
    deleted = session._deleted
    # The states behind ``session.dirty`` and ``session.deleted``, without building those sets.
    modified = [state for state in session.identity_map._modified if state not in deleted]
    for state in chain(modified, deleted):
        versioning = _versioning(state.mapper)
        if versioning is None:
            continue
        obj = state.obj()
        if obj is None:
            continue
        key, tables = versioning
        version = state.committed_state.get(key, state.dict.get(key))
        identity = state.identity[0] if state.identity and len(state.identity) == 1 else state.identity
        for table in tables:
            held.append((table, type(obj).__name__, identity, version if isinstance(version, int) else None))
    return held


def _with_bumped_roots(held: list[tuple[str, str, Any, Any]], session: Session) -> list[tuple[str, str, Any, Any]]:
    """``held`` plus the aggregate roots the flush bumped for their parts (unchanged themselves before it)."""
    known = {(table, identity) for table, _, identity, _ in held}
    return held + [row for row in bumped_roots(session) if (row[0], row[2]) not in known]


def _concurrency_error(exc: StaleDataError, held: list[tuple[str, str, Any, Any]]) -> ConcurrencyError:
    if isinstance(exc, StaleRowsError):
        return exc.to_keel_error()  # it names the stale rows itself
    match = _STALE_TABLE.search(str(exc))
    table = match.group(1) if match else None
    candidates = [h for h in held if table is None or h[0] == table]
    if len(candidates) == 1:
        _, entity, identity, version = candidates[0]
        return ConcurrencyError(entity=entity, id=identity, version=version)
    if candidates:
        entity = candidates[0][1]
        return ConcurrencyError(
            f"{entity} rows were changed by someone else",
            entity=entity,
            ids=[str(c[2]) for c in candidates],
        )
    return ConcurrencyError("a row was changed by someone else")
