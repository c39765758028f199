"""``KeelContainer``: the dependency-injector container that wires keel.

.. code-block:: python

    class AllocationContainer(KeelContainer[AllocationUnitOfWork]):  # types unit_of_work()
        settings = providers.Singleton(AllocationSettings)
        unit_of_work_class = providers.Object(AllocationUnitOfWork)
        handlers = providers.Object(allocation_handlers)        # a HandlerRegistry
        notifications = providers.Singleton(EmailNotifications)
        handler_dependencies = providers.Dict(notifications=notifications)

    async with running(AllocationContainer()) as container:   # init_resources / shutdown_resources
        await container.bus().handle(Allocate(orderid="o1", sku="LAMP", qty=1))

Providers redefined in a subclass reach the inherited providers that use
them (see :func:`rewire_subclass`: a copy and dependency-injector's own
overriding). Tests override an instance's providers as usual:
``container.engine.override(providers.Object(engine))``.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

from dependency_injector import containers, providers
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from typing_extensions import TypeVar as DefaultedTypeVar

from keel.config import KeelSettings, RepositorySettings
from keel.cross_cutting.cache import cache_from_settings, close_cache_at_shutdown
from keel.cross_cutting.error import TRANSIENT_ERRORS
from keel.cross_cutting.security import AuditMiddleware, authorize, correlate
from keel.cross_cutting.telemetry import (
    CommitTelemetry,
    TelemetryMiddleware,
    instrument_engine,
    observe_replica_stats,
    record_cache_stats,
)
from keel.domain.ports import Cache, EventBus
from keel.infrastructure.audit import RecordAudit, SqlAlchemyAuditLog
from keel.infrastructure.cache import use_cache
from keel.infrastructure.database import create_engine, create_session_factory
from keel.infrastructure.database.engine import checked_repository_settings, create_replica_router
from keel.infrastructure.database.replicas import ReplicaRouter
from keel.infrastructure.event_bus import build_event_bus
from keel.infrastructure.event_store._store import SqlAlchemyEventStore
from keel.infrastructure.outbox.relay import OutboxRelay
from keel.infrastructure.outbox.routing import OutboxRouting
from keel.infrastructure.outbox.writer import OutboxWriter
from keel.infrastructure.processed_commands import RecordProcessedCommands
from keel.infrastructure.unit_of_work import SqlAlchemyUnitOfWork
from keel.service_layer import HandlerRegistry, MessageBus, RetryPolicy
from keel.service_layer.middleware import Middleware
from keel.service_layer.participants import CommitParticipant

C = TypeVar("C", bound=containers.Container)
#: The application's unit-of-work class: ``class App(KeelContainer[AppUnitOfWork])`` types
#: ``App().unit_of_work()`` as ``AppUnitOfWork``; a bare ``KeelContainer`` subclass gets the base class.
U = DefaultedTypeVar("U", bound=SqlAlchemyUnitOfWork, default=SqlAlchemyUnitOfWork)


# --- provider functions ----------------------------------------------------------------


def open_engine(settings: KeelSettings) -> Iterator[AsyncEngine]:
    """The engine resource: built from settings when resources start (SQL spans under KEEL_TELEMETRY__ENABLED)."""
    engine = create_engine(settings)
    if settings.telemetry.enabled and settings.telemetry.sql_spans:
        instrument_engine(engine)
    yield engine


def apply_repository_settings(settings: KeelSettings) -> Iterator[RepositorySettings]:
    """Page-size limits and the cursor secret from ``KEEL_REPOSITORY__*``, checked when resources start.

    They travel with this container's session factory (every session's
    ``info``), not in process-wide state, so two containers in one process
    keep their own. The development cursor secret is refused under
    ``KEEL_ENV=production``.
    """
    yield checked_repository_settings(settings)


def open_replica_router(settings: KeelSettings) -> Iterator[ReplicaRouter | None]:
    """The read replicas (``KEEL_DATABASE__REPLICAS``), or None: built when resources start."""
    router = create_replica_router(settings)
    if router is not None and settings.telemetry.enabled:
        observe_replica_stats(router.stats)
    yield router


def observed_cache(settings: KeelSettings) -> Cache | None:
    """The cache ``KEEL_CACHE__*`` asks for; its hits, misses and errors are metrics under telemetry."""
    cache = cache_from_settings(settings.cache)
    stats = getattr(cache, "stats", None)
    if stats is not None and settings.telemetry.enabled:
        record_cache_stats(stats, namespace=settings.cache.namespace)
    return cache


async def dispose_replicas_at_shutdown(router: ReplicaRouter | None) -> AsyncIterator[ReplicaRouter | None]:
    """Close the replica engines' pooled connections when resources shut down (see ``engine_lifecycle``)."""
    try:
        yield router
    finally:
        if router is not None:
            await router.dispose()


def session_factory_for(
    engine: AsyncEngine, repository_settings: RepositorySettings, replicas: ReplicaRouter | None = None
) -> async_sessionmaker[AsyncSession]:
    """The session factory; its sessions carry the repository settings to the repositories.

    Read-only units of work on it read from ``replicas`` when there are some.
    """
    return create_session_factory(engine, repository_settings=repository_settings, replicas=replicas)


async def dispose_engine_at_shutdown(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """Close the engine's pooled connections when resources shut down.

    A separate resource because disposal is async and dependency-injector
    would otherwise make every provider that depends on the engine return
    awaitables.
    """
    try:
        yield engine
    finally:
        await engine.dispose()


def build_unit_of_work(
    unit_of_work_class: type[U],
    session_factory: async_sessionmaker[AsyncSession],
    participants: Iterable[CommitParticipant[Any]] = (),
    first: Iterable[CommitParticipant[Any]] = (),
    cache: Cache | None = None,
    *,
    read_only: bool = False,
) -> U:
    """A fresh unit of work of the configured class, with the container's commit participants and cache.

    They are added after construction, so a unit of work class whose
    ``__init__`` takes only the session factory keeps working; ``first`` go
    before the class's own (telemetry's commit span covers them all), the
    cache's invalidation last; ``read_only`` is passed only when true, for
    the same reason.
    """
    uow = unit_of_work_class(session_factory, read_only=True) if read_only else unit_of_work_class(session_factory)
    uow.participants[:0] = first
    uow.participants.extend(participants)
    if cache is not None and getattr(uow, "cache", None) is None:
        use_cache(uow, cache)  # its invalidation participant runs last
    return uow


async def close_event_bus_at_shutdown(event_bus: EventBus) -> AsyncIterator[EventBus]:
    """A resource that closes the event bus's clients when the container's resources shut down."""
    try:
        yield event_bus
    finally:
        await event_bus.close()


def telemetry_participants(settings: KeelSettings) -> list[CommitParticipant[Any]]:
    """The commit span participant under ``KEEL_TELEMETRY__ENABLED``, else nothing."""
    return [CommitTelemetry()] if settings.telemetry.enabled else []


def telemetry_middleware(settings: KeelSettings) -> list[Middleware]:
    """The tracing and metrics middleware under ``KEEL_TELEMETRY__ENABLED``, else nothing."""
    return [TelemetryMiddleware()] if settings.telemetry.enabled else []


def middleware_chain(*layers: Iterable[Middleware]) -> list[Middleware]:
    """The bus's middleware: each list's, in order (the first outermost)."""
    return [layer for group in layers for layer in group]


def audit_middleware_for(session_factory: Callable[[], async_sessionmaker[AsyncSession]]) -> AuditMiddleware:
    """The audit middleware, writing denials and failures through the container's current session factory.

    Given the session factory's provider, not the factory: the factory is a
    resource and follows the engine when resources restart.
    """
    return AuditMiddleware(SqlAlchemyAuditLog(lambda: session_factory()()))


def outbox_writer_for(settings: KeelSettings, routes: OutboxRouting | None) -> OutboxWriter:
    """The outbox writer: the wiring's routes, then ``KEEL_OUTBOX__ROUTES`` for event types they do not name.

    With no route at all (or ``KEEL_OUTBOX__ENABLED=false``) it writes nothing.
    """
    outbox = settings.outbox
    routing = (routes or OutboxRouting()).merged(OutboxRouting.from_settings(outbox.routes))
    return OutboxWriter(routing if outbox.enabled else OutboxRouting(), channel=outbox.channel)


def retry_policy(settings: KeelSettings, max_attempts: int) -> RetryPolicy:
    """A bus retry policy from ``KEEL_BUS__*``, making ``max_attempts`` tries.

    The container gives commands ``bus.max_attempts`` and each event handler
    ``bus.event_handler_attempts``; backoff and jitter are shared.
    """
    bus = settings.bus
    return RetryPolicy(
        max_attempts=max_attempts,
        initial_backoff=bus.backoff_initial,
        max_backoff=bus.backoff_max,
        jitter=bus.jitter,
        retry_on=TRANSIENT_ERRORS,
    )


def event_store_for(settings: KeelSettings, session_factory: async_sessionmaker[AsyncSession]) -> SqlAlchemyEventStore:
    """The configured event store (``KEEL_EVENT_STORE__BACKEND``: ``sqlalchemy``, the only one)."""
    return SqlAlchemyEventStore(session_factory, max_event_bytes=settings.event_store.max_event_bytes)


def backend_of(settings: KeelSettings, section: str, default: str) -> str:
    """``settings.<section>.backend``, or ``default`` while that section does not exist yet."""
    return str(getattr(getattr(settings, section, None), "backend", default))


# --- the container ----------------------------------------------------------------------


class KeelContainer(containers.DeclarativeContainer, Generic[U]):
    """Settings, engine, session factory, units of work and the message bus.

    Extension points to redefine in a subclass (or override on an instance):
    ``settings``, ``unit_of_work_class``, ``commit_participants``, ``handlers`` (a
    :class:`keel.HandlerRegistry`), ``command_handlers``, ``event_handlers``,
    ``handler_dependencies``, ``commands``, ``bus_middleware``, ``outbox_routes``, and the ``event_bus``, ``cache`` and
    ``event_store`` backends.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        rewire_subclass(cls)

    settings = providers.Singleton(KeelSettings)

    engine = providers.Resource(open_engine, settings)
    engine_lifecycle = providers.Resource(dispose_engine_at_shutdown, engine)
    repository_settings = providers.Resource(apply_repository_settings, settings)
    replica_router = providers.Resource(open_replica_router, settings)
    replica_router_lifecycle = providers.Resource(dispose_replicas_at_shutdown, replica_router)
    # A resource, not a singleton: it must follow the engine when resources restart,
    # or it would keep handing out sessions on the disposed one.
    session_factory = providers.Resource(session_factory_for, engine, repository_settings, replica_router)

    # Typed as the class, not as its constructor's signature (what mypy would infer), so a
    # subclass may give a unit of work whose ``__init__`` takes only the session factory.
    unit_of_work_class: providers.Provider[type[SqlAlchemyUnitOfWork]] = providers.Object(SqlAlchemyUnitOfWork)
    #: Run at every commit of the container's units of work, after the class's own. The default
    #: ``KEEL_CACHE__BACKEND``: memory (the default), redis or none; closed when resources shut down.
    cache = providers.Singleton(observed_cache, settings)
    cache_lifecycle = providers.Resource(close_cache_at_shutdown, cache)
    #: records each command handled, so a retry after a lost commit acknowledgement is not applied twice,
    #: writes the command's audit row in the handler's own transaction, and the outbox rows of routed events.
    #: Which events leave through the outbox: an ``OutboxRouting`` (see docs/outbox.md), or None.
    outbox_routes: providers.Provider[OutboxRouting | None] = providers.Object(None)
    outbox_writer = providers.Singleton(outbox_writer_for, settings, outbox_routes)
    commit_participants = providers.List(
        providers.Singleton(RecordProcessedCommands), providers.Singleton(RecordAudit), outbox_writer
    )
    #: A factory: every call is a new unit of work (the bus calls it per message).
    #: Before every other participant: telemetry's (a ``keel.uow.commit`` span) when enabled.
    first_commit_participants = providers.Singleton(telemetry_participants, settings)
    unit_of_work: providers.Factory[U] = providers.Factory(
        build_unit_of_work, unit_of_work_class, session_factory, commit_participants, first_commit_participants, cache
    )
    #: A read-only unit of work for queries: on a replica when ``KEEL_DATABASE__REPLICAS`` names some.
    #: Without the cache on purpose: a lagging replica's value must not be cached as current.
    read_only_unit_of_work: providers.Factory[U] = providers.Factory(
        build_unit_of_work, unit_of_work_class, session_factory, read_only=True
    )

    # Any provider kind: a subclass may build its registry lazily (a Singleton, a Callable).
    handlers: providers.Provider[HandlerRegistry | None] = providers.Object(None)
    command_handlers = providers.Dict()
    event_handlers = providers.Dict()
    handler_dependencies = providers.Dict()
    commands = providers.List()
    command_retry = providers.Singleton(retry_policy, settings, settings.provided.bus.max_attempts)
    event_retry = providers.Singleton(retry_policy, settings, settings.provided.bus.event_handler_attempts)
    #: Wraps every handler call, the first outermost (security, telemetry); see keel.service_layer.middleware.
    #: The default: a correlation id for every message, the audit record of every command (denials
    #: included, so it sits outside the permission check), then ``requires`` enforced.
    bus_middleware = providers.List(
        providers.Object(correlate),
        providers.Singleton(audit_middleware_for, session_factory.provider),
        providers.Object(authorize),
    )
    #: Outside ``bus_middleware``: telemetry's (a span and metrics per handler call) when enabled.
    outer_bus_middleware = providers.Singleton(telemetry_middleware, settings)
    bus = providers.Singleton(
        MessageBus,
        unit_of_work.provider,
        command_handlers=command_handlers,
        event_handlers=event_handlers,
        dependencies=handler_dependencies,
        registry=handlers,
        commands=commands,
        command_retry=command_retry,
        event_retry=event_retry,
        middleware=providers.Callable(middleware_chain, outer_bus_middleware, bus_middleware),
        audit=settings.provided.security.audit,
    )

    #: ``KEEL_EVENT_BUS__BACKEND``: memory (the default) or pubsub; closed when resources shut down.
    event_bus = providers.Singleton(build_event_bus, settings)
    event_bus_lifecycle = providers.Resource(close_event_bus_at_shutdown, event_bus)
    #: A relay over the container's event bus and database (``await container.outbox_relay().run()``).
    outbox_relay = providers.Factory(OutboxRelay, event_bus, session_factory, settings=settings.provided.outbox)
    #: keel's event store over the container's session factory (``KEEL_EVENT_STORE__*``).
    event_store = providers.Singleton(event_store_for, settings, session_factory)


@asynccontextmanager
async def running(container: C) -> AsyncIterator[C]:
    """Initialise the container's resources, yield it, shut them down (even on error).

    For scripts, tests and a FastAPI ``lifespan``.
    """
    await _settle(container.init_resources())
    try:
        yield container
    finally:
        await _settle(container.shutdown_resources())


async def _settle(result: Any) -> None:
    # init_resources/shutdown_resources return an awaitable only when some
    # resource is async; accept both.
    if inspect.isawaitable(result):
        await result


# --- subclass inheritance -----------------------------------------------------------------


def rewire_subclass(cls: type[containers.DeclarativeContainer]) -> None:
    """Make a subclass's redefined providers reach the inherited providers that use them.

    dependency-injector binds injections when a class body runs, so without
    this ``class App(KeelContainer): settings = ...`` would leave the inherited
    ``engine`` reading ``KeelContainer.settings``. dependency-injector's own
    answer is ``@containers.copy(Base)``; it copies the subclass's own
    providers a second time, splitting them from the inherited copies that
    reference them (an instance override of ``App.settings`` would not reach
    ``engine``). So the class's providers are copied once, with
    ``providers.deepcopy`` (one memo: a provider of the application's that
    names ``KeelContainer.session_factory`` gets the same copy as
    ``App.session_factory``), and each copy of a redefined base provider is
    overridden by the subclass's provider, dependency-injector's ordinary
    overriding. Called by ``KeelContainer.__init_subclass__``; calling it
    again is harmless.
    """
    originals: dict[str, Any] = dict(cls.providers)
    memo: dict[int, Any] = {}
    copies: dict[str, Any] = providers.deepcopy(originals, memo)
    for name, provider in copies.items():
        setattr(cls, name, provider)
    for name, provider in copies.items():
        for base in cls.__mro__[1:]:
            shadowed = _providers_of(base).get(name)
            stand_in = memo.get(id(shadowed)) if shadowed is not None else None
            if stand_in is not None and stand_in is not provider and not _is_overridden_by(stand_in, provider):
                stand_in.override(provider)


def _providers_of(klass: type) -> dict[str, Any]:
    found = klass.__dict__.get("providers")
    return found if isinstance(found, dict) else {}


def _is_overridden_by(stand_in: providers.Provider[Any], provider: providers.Provider[Any]) -> bool:
    return any(overriding is provider for overriding in stand_in.overridden)


__all__ = [
    "TRANSIENT_ERRORS",
    "KeelContainer",
    "retry_policy",
    "rewire_subclass",
    "running",
]
