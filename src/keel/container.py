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
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

from dependency_injector import containers, providers
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from typing_extensions import TypeVar as DefaultedTypeVar

from keel.config import KeelSettings, RepositorySettings
from keel.cross_cutting.error import TRANSIENT_ERRORS, ConfigurationError
from keel.infrastructure.database import create_engine, create_session_factory
from keel.infrastructure.database.engine import checked_repository_settings
from keel.infrastructure.processed_commands import RecordProcessedCommands
from keel.infrastructure.unit_of_work import SqlAlchemyUnitOfWork
from keel.service_layer import HandlerRegistry, MessageBus, RetryPolicy
from keel.service_layer.participants import CommitParticipant

C = TypeVar("C", bound=containers.Container)
#: The application's unit-of-work class: ``class App(KeelContainer[AppUnitOfWork])`` types
#: ``App().unit_of_work()`` as ``AppUnitOfWork``; a bare ``KeelContainer`` subclass gets the base class.
U = DefaultedTypeVar("U", bound=SqlAlchemyUnitOfWork, default=SqlAlchemyUnitOfWork)


# --- provider functions ----------------------------------------------------------------


def open_engine(settings: KeelSettings) -> Iterator[AsyncEngine]:
    """The engine resource: built from settings when resources start."""
    yield create_engine(settings)


def apply_repository_settings(settings: KeelSettings) -> Iterator[RepositorySettings]:
    """Page-size limits and the cursor secret from ``KEEL_REPOSITORY__*``, checked when resources start.

    They travel with this container's session factory (every session's
    ``info``), not in process-wide state, so two containers in one process
    keep their own. The development cursor secret is refused under
    ``KEEL_ENV=production``.
    """
    yield checked_repository_settings(settings)


def session_factory_for(
    engine: AsyncEngine, repository_settings: RepositorySettings
) -> async_sessionmaker[AsyncSession]:
    """The session factory; its sessions carry the repository settings to the repositories."""
    return create_session_factory(engine, repository_settings=repository_settings)


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
) -> U:
    """A fresh unit of work of the configured class, with the container's commit participants.

    They are appended after construction, so a unit of work class whose
    ``__init__`` takes only the session factory keeps working.
    """
    uow = unit_of_work_class(session_factory)
    uow.participants.extend(participants)
    return uow


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


def backend_of(settings: KeelSettings, section: str, default: str) -> str:
    """``settings.<section>.backend``, or ``default`` while that section does not exist yet."""
    return str(getattr(getattr(settings, section, None), "backend", default))


def not_built(component: str, section: str, default: str) -> Any:
    """A provider function for a component whose backends arrive with a later release."""

    def provide(settings: KeelSettings) -> Any:
        backend = backend_of(settings, section, default)
        raise ConfigurationError(
            f"no {component} backend {backend!r} is available in this version of keel; "
            f"override the container's `{section}` provider with your own",
            variables=[f"KEEL_{section.upper()}__BACKEND"],
        )

    provide.__name__ = provide.__qualname__ = f"{section}_backend"
    return provide


# --- the container ----------------------------------------------------------------------


class KeelContainer(containers.DeclarativeContainer, Generic[U]):
    """Settings, engine, session factory, units of work and the message bus.

    Extension points to redefine in a subclass (or override on an instance):
    ``settings``, ``unit_of_work_class``, ``commit_participants``, ``handlers`` (a
    :class:`keel.HandlerRegistry`), ``command_handlers``, ``event_handlers``,
    ``handler_dependencies``, ``commands``, ``bus_middleware``, and the ``event_bus``, ``cache`` and
    ``event_store`` backends.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        rewire_subclass(cls)

    settings = providers.Singleton(KeelSettings)

    engine = providers.Resource(open_engine, settings)
    engine_lifecycle = providers.Resource(dispose_engine_at_shutdown, engine)
    repository_settings = providers.Resource(apply_repository_settings, settings)
    # A resource, not a singleton: it must follow the engine when resources restart,
    # or it would keep handing out sessions on the disposed one.
    session_factory = providers.Resource(session_factory_for, engine, repository_settings)

    # Typed as the class, not as its constructor's signature (what mypy would infer), so a
    # subclass may give a unit of work whose ``__init__`` takes only the session factory.
    unit_of_work_class: providers.Provider[type[SqlAlchemyUnitOfWork]] = providers.Object(SqlAlchemyUnitOfWork)
    #: Run at every commit of the container's units of work, after the class's own. The default
    #: records each command handled, so a retry after a lost commit acknowledgement is not applied twice.
    commit_participants = providers.List(providers.Singleton(RecordProcessedCommands))
    #: A factory: every call is a new unit of work (the bus calls it per message).
    unit_of_work: providers.Factory[U] = providers.Factory(
        build_unit_of_work, unit_of_work_class, session_factory, commit_participants
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
    bus_middleware = providers.List()
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
        middleware=bus_middleware,
    )

    event_bus = providers.Singleton(not_built("event bus", "event_bus", "memory"), settings)
    cache = providers.Singleton(not_built("cache", "cache", "memory"), settings)
    event_store = providers.Singleton(not_built("event store", "event_store", "sqlalchemy"), settings)


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
