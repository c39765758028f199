"""``InMemoryUnitOfWork``: the SQLAlchemy unit of work's twin for unit tests.

Declare repositories as class annotations, exactly as on
:class:`keel.SqlAlchemyUnitOfWork`; ``InMemoryRepository[Model]`` and your
``SqlAlchemyRepository`` subclasses both work (the latter become in-memory
twins that keep their custom query methods)::

    class FakeUnitOfWork(InMemoryUnitOfWork):
        products: InMemoryRepository[Product]

    uow = FakeUnitOfWork()
    async with uow:
        uow.products.add(Product(sku="LAMP", stock=10))
        await uow.commit()
    assert uow.commits == 1

Data lives in an :class:`InMemoryStore`: the instance's own by default, so it
outlives each ``async with``; pass one store to several instances (a message
bus's ``uow_factory``) to share data between them. Commit and rollback behave
as on the database: uncommitted changes are invisible elsewhere and vanish on
rollback, a stale version raises ``ConcurrencyError`` on commit, and events of
seen aggregates are released by ``collect_new_events()`` after the commit.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from keel.cross_cutting.error import UnitOfWorkError
from keel.domain.aggregate import AggregateRoot
from keel.domain.messages import DomainEvent
from keel.domain.ports import Cache
from keel.infrastructure.declared_repositories import DeclaredRepositories, declared_in
from keel.infrastructure.repository.memory._cache import TwinCacheInvalidation
from keel.infrastructure.repository.memory.repository import in_memory_twin
from keel.infrastructure.repository.memory.store import InMemoryStore
from keel.infrastructure.repository.memory.workspace import Workspace
from keel.infrastructure.repository.sqlalchemy import SqlAlchemyRepository
from keel.service_layer.participants import CommitParticipant
from keel.service_layer.unit_of_work import AbstractUnitOfWork

U_co = TypeVar("U_co", bound=AbstractUnitOfWork, covariant=True)


class InMemoryUnitOfWork(DeclaredRepositories, AbstractUnitOfWork):
    """Unit of work over an :class:`InMemoryStore`; see the module docstring."""

    @classmethod
    def _repository_class(cls, declared: type[Any]) -> type[Any]:
        # SQL repositories become in-memory twins; any other repository class
        # builds itself from this unit of work as it would from the real one.
        if SqlAlchemyRepository in declared.__mro__:
            sql_repository: Any = declared  # functools.cache types its argument as Hashable, which type[Any] is not
            return in_memory_twin(sql_repository)
        return declared

    def __init__(
        self,
        store: InMemoryStore | None = None,
        *,
        participants: Iterable[CommitParticipant[Any]] = (),
        cache: Cache | None = None,
        read_only: bool = False,
    ) -> None:
        # Not super(): in a twin that also inherits the application's unit of work
        # (in_memory_unit_of_work), the next __init__ is the SQL one, which wants a session factory.
        AbstractUnitOfWork.__init__(self, participants=participants)
        #: The cache handed in (``uow.cache``); commits invalidate what the workspace held.
        self.cache = cache
        if cache is not None:
            self.participants.append(TwinCacheInvalidation(cache))
        #: As on the SQL unit of work: ``commit()`` is refused (there are no replicas to read from here).
        self.read_only = read_only
        #: The data this unit of work reads and commits to.
        self.store = store if store is not None else InMemoryStore()
        #: True once this instance has committed (Cosmic Python's FakeUnitOfWork flag).
        self.committed = False
        #: Successful commits and explicit rollbacks made through this instance.
        self.commits = 0
        self.rollbacks = 0
        #: Every event released by this instance's commits, oldest first (kept after collection).
        self.committed_events: list[DomainEvent] = []
        self._workspace: Workspace | None = None
        self._store_commit_callbacks: list[Callable[[], None]] = []

    def on_store_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` as part of the commit being made, right after the store applied it.

        For participants of the twin that keep data beside the store: what
        they write there commits (or not) with the work, as a row in the
        same transaction would.
        """
        self._store_commit_callbacks.append(callback)

    @property
    def workspace(self) -> Workspace:
        """The open transaction's view of the store."""
        if self._workspace is None:
            raise UnitOfWorkError(f"{type(self).__name__} is not open (use `async with uow:`)")
        return self._workspace

    async def _begin(self) -> None:
        self._workspace = Workspace(self.store)
        self._build_repositories()

    async def commit(self) -> None:
        """Make the work durable (see :meth:`AbstractUnitOfWork.commit`); refused when read-only."""
        if self.read_only:
            self._require_open("commit")
            raise UnitOfWorkError(f"{type(self).__name__} is read-only: it cannot commit", reason="read_only")
        await super().commit()

    async def _commit(self, events: list[DomainEvent]) -> None:
        # No flush here: both flush phases run before the workspace commits, in order.
        self._store_commit_callbacks = []
        await self._before_flush(events)
        await self._after_flush(events)
        workspace = self.workspace
        try:
            workspace.commit()
        except Exception:
            # As a session after a failed flush: unusable until rolled back.
            workspace.failed = True
            raise
        for callback in self._store_commit_callbacks:
            callback()
        self.committed = True
        self.commits += 1
        self.committed_events.extend(events)

    async def _rollback(self) -> None:
        self.rollbacks += 1
        self.workspace.reset()

    def _close_needs_shield(self) -> bool:
        return False  # closing a workspace never suspends

    async def _close(self) -> None:
        self._drop_repositories()
        if self._workspace is not None:
            self._workspace.close()
        self._workspace = None

    def _candidates(self) -> Iterable[AggregateRoot]:
        found: dict[int, AggregateRoot] = dict(self._seen)
        if self._workspace is not None:
            for entity in self._workspace.identity.values():
                if isinstance(entity, AggregateRoot):
                    found.setdefault(id(entity), entity)
        return found.values()


class InMemoryTwin(Protocol[U_co]):
    """What :func:`in_memory_unit_of_work` returns: called like :class:`InMemoryUnitOfWork`, builds a ``U_co``."""

    def __call__(
        self,
        store: InMemoryStore | None = None,
        *,
        participants: Iterable[CommitParticipant[Any]] = (),
        cache: Cache | None = None,
        read_only: bool = False,
    ) -> U_co: ...


def in_memory_unit_of_work(unit_of_work: type[U_co]) -> InMemoryTwin[U_co]:
    """An :class:`InMemoryUnitOfWork` class with the repositories ``unit_of_work`` declares.

    The class also inherits ``unit_of_work``, so its instances pass a handler's
    ``uow: AppUnitOfWork`` annotation, under mypy and ``isinstance`` alike, and
    keep the application's own helper methods. The twin's storage comes first
    in the MRO: every hook of the SQL unit of work (begin, commit, rollback,
    close, the seen-aggregate scan) is the twin's, and ``session`` raises
    ``AttributeError`` instead of reaching a database. Tests that also read the twin's counters
    (``committed``, ``commits``, ``store``) under mypy can declare the same
    class by hand: ``class FakeAppUnitOfWork(InMemoryUnitOfWork, AppUnitOfWork): pass``.
    """
    declared = declared_in(unit_of_work)
    hints = {name: repo for name, (repo, _) in declared.items()}
    bases: tuple[type, ...] = (InMemoryUnitOfWork,)
    if not issubclass(unit_of_work, InMemoryUnitOfWork):
        bases = (InMemoryUnitOfWork, unit_of_work)
    cls: type[InMemoryUnitOfWork] = type(
        f"InMemory{unit_of_work.__name__}",
        bases,
        {"__annotations__": hints, "__module__": __name__, "session": property(_no_session)},
    )
    # Resolved from the application's class, whose annotations carry the models.
    cls._repository_specs = {name: (cls._repository_class(repo), model) for name, (repo, model) in declared.items()}
    # It is both classes; mypy has no intersection type to say so.
    return typing.cast("InMemoryTwin[U_co]", cls)


def _no_session(self: InMemoryUnitOfWork) -> Any:
    # An AttributeError, so `hasattr(uow, "session")` still tells the twin from the real thing.
    raise AttributeError(f"{type(self).__name__} is an in-memory twin: it has no database session")
