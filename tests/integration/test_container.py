"""KeelContainer: wiring, resources, subclassing and overriding."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from sqlalchemy import text

from keel import (
    BusConfigurationError,
    Command,
    ConcurrencyError,
    ConfigurationError,
    DatabaseUnavailableError,
    HandlerRegistry,
    KeelError,
    SqlAlchemyUnitOfWork,
)
from keel.config import KeelSettings
from keel.container import KeelContainer, running
from keel.infrastructure.database import create_engine


class Ping(Command):
    n: int


class PingUnitOfWork(SqlAlchemyUnitOfWork):
    pass


registry = HandlerRegistry()


@registry.register
async def ping(cmd: Ping, uow: PingUnitOfWork, greeting: str) -> str:
    async with uow:
        answer = (await uow.session.execute(text("SELECT :n"), {"n": cmd.n})).scalar_one()
    return f"{greeting} {answer} via {type(uow).__name__}"


def settings_for(path: Path, **bus: Any) -> KeelSettings:
    # An empty database (no keel_audit): these tests are about wiring, tests/integration/test_audit.py about audit.
    return KeelSettings(database={"url": f"sqlite+aiosqlite:///{path}"}, bus=bus, security={"audit": False})


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "container.db"


class PingContainer(KeelContainer):
    unit_of_work_class = providers.Object(PingUnitOfWork)
    handlers = providers.Object(registry)
    greeting = providers.Object("pong")
    handler_dependencies = providers.Dict(greeting=greeting)
    # A provider of the application's that uses one of keel's: it must get this class's.
    uses_session_factory = providers.Callable(lambda factory: factory, KeelContainer.session_factory)


def ping_container(db_path: Path, **bus: Any) -> Any:
    container = PingContainer()
    container.settings.override(providers.Object(settings_for(db_path, **bus)))
    return container


async def test_the_bus_handles_commands_with_the_subclasss_wiring(db_path: Path) -> None:
    """Handlers, dependencies and the unit-of-work class come from the subclass's providers."""
    async with running(ping_container(db_path)) as container:
        assert await container.bus().handle(Ping(n=7)) == "pong 7 via PingUnitOfWork"


async def test_settings_come_from_the_environment_by_default(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without overrides the container reads KEEL_* variables."""
    monkeypatch.setenv("KEEL_DATABASE__URL", f"sqlite+aiosqlite:///{db_path}")
    monkeypatch.setenv("KEEL_BUS__MAX_ATTEMPTS", "4")
    async with running(KeelContainer()) as container:
        assert container.engine().url.database == str(db_path)
        assert container.command_retry().max_attempts == 4


async def test_shutdown_disposes_the_engine(db_path: Path) -> None:
    """shutdown_resources closes the pooled connections; init_resources builds a new engine."""
    container = ping_container(db_path)
    await container.init_resources()
    engine = container.engine()
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    assert engine.pool.checkedin() == 1
    await container.shutdown_resources()
    assert engine.pool.checkedin() == 0
    await container.init_resources()
    assert container.engine() is not engine
    await container.shutdown_resources()


async def test_after_a_restart_units_of_work_use_the_new_engine(db_path: Path) -> None:
    """The session factory follows the engine resource: a second start never reuses the disposed engine."""
    container = ping_container(db_path)
    engines = []
    for _ in range(2):
        async with running(container):
            engine = container.engine()
            assert container.session_factory().kw["bind"] is engine
            async with container.unit_of_work() as uow:
                assert uow.session.bind is engine
                await uow.session.execute(text("SELECT 1"))
            assert await container.bus().handle(Ping(n=1)) == "pong 1 via PingUnitOfWork"
            engines.append(engine)
        assert engine.pool.checkedin() == 0
    assert engines[0] is not engines[1]


@pytest.mark.postgres
async def test_init_and_shutdown_cycles_leave_no_connection_open(postgres_url: str) -> None:
    """Two start/stop cycles with units of work in each: PostgreSQL sees none of the container's connections after."""
    name = f"keel-restart-{uuid.uuid4().hex}"
    container = PingContainer()
    container.settings.override(
        providers.Object(KeelSettings(database={"url": postgres_url, "application_name": name}))
    )
    for _ in range(2):
        async with running(container):
            for _ in range(2):
                async with container.unit_of_work() as uow:
                    await uow.session.execute(text("SELECT 1"))
    admin = create_engine(KeelSettings(database={"url": postgres_url, "application_name": "keel-admin"}))
    try:
        async with admin.connect() as conn:
            query = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")
            assert (await conn.execute(query, {"name": name})).scalar_one() == 0
    finally:
        await admin.dispose()


async def test_running_shuts_down_even_when_the_body_fails(db_path: Path) -> None:
    """The context manager disposes the engine on the way out of an error."""
    container = ping_container(db_path)
    with pytest.raises(RuntimeError, match="boom"):
        async with running(container):
            engine = container.engine()
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            raise RuntimeError("boom")
    assert engine.pool.checkedin() == 0


async def test_every_unit_of_work_is_new_and_shares_the_session_factory(db_path: Path) -> None:
    """unit_of_work is a factory of the configured class over the one session factory."""
    async with running(ping_container(db_path)) as container:
        first, second = container.unit_of_work(), container.unit_of_work()
        assert type(first) is PingUnitOfWork
        assert first is not second
        assert first.session_factory is second.session_factory is container.session_factory()
        assert container.uses_session_factory() is container.session_factory()


async def test_retry_policies_come_from_bus_settings_and_retry_transient_errors(db_path: Path) -> None:
    """KEEL_BUS__* shape the policies; both retry conflicts and dropped connections."""
    container = ping_container(db_path, max_attempts=7, backoff_initial=0.5, event_handler_attempts=2)
    async with running(container):
        bus = container.bus()
        assert bus.command_retry.max_attempts == 7
        assert bus.command_retry.initial_backoff == 0.5
        assert bus.event_retry.max_attempts == 2
        assert bus.command_retry.retry_on == (ConcurrencyError, DatabaseUnavailableError)


async def test_an_instance_override_replaces_a_provider_everywhere(db_path: Path, tmp_path: Path) -> None:
    """Tests override the engine (or anything) on the instance; dependants follow."""
    own_engine = create_engine(settings_for(tmp_path / "other.db"))
    container = ping_container(db_path)
    container.engine.override(providers.Object(own_engine))
    async with running(container):
        assert container.session_factory().kw["bind"] is own_engine
        assert await container.bus().handle(Ping(n=1)) == "pong 1 via PingUnitOfWork"
    container.engine.reset_last_overriding()
    await own_engine.dispose()


async def test_overriding_a_dependency_before_the_bus_is_built(db_path: Path) -> None:
    """The bus is a singleton: override what it injects before first use (or reset it)."""
    container = ping_container(db_path)
    with container.greeting.override("hi"):
        async with running(container):
            assert await container.bus().handle(Ping(n=2)) == "hi 2 via PingUnitOfWork"
            container.bus.reset()


async def test_a_subclass_redefinition_reaches_inherited_providers(tmp_path: Path) -> None:
    """Redefined settings and unit-of-work class reach the inherited engine and factory, two levels down."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'custom.db'}"

    class Custom(KeelContainer):
        settings = providers.Singleton(KeelSettings, database={"url": url}, bus={"max_attempts": 9})

    class Deeper(Custom):
        unit_of_work_class = providers.Object(PingUnitOfWork)

    async with running(Deeper()) as container:
        assert container.engine().url.database == str(tmp_path / "custom.db")
        assert container.bus().command_retry.max_attempts == 9
        assert type(container.unit_of_work()) is PingUnitOfWork
    assert Custom().command_retry().max_attempts == 9
    assert KeelContainer().command_retry().max_attempts == KeelSettings().bus.max_attempts
    assert KeelContainer.unit_of_work_class() is SqlAlchemyUnitOfWork


def test_an_instance_override_of_a_redefined_provider_reaches_inherited_ones() -> None:
    """Overriding a subclass's own settings on an instance changes what the inherited providers build."""

    class Custom(KeelContainer):
        settings = providers.Singleton(KeelSettings, bus={"max_attempts": 9})

    container = Custom()
    container.settings.override(providers.Object(KeelSettings(bus={"max_attempts": 2})))
    assert container.command_retry().max_attempts == 2


async def test_a_subclass_bus_middleware_wraps_the_inherited_bus(db_path: Path) -> None:
    """Middleware declared in a subclass body reaches the bus the subclass inherits."""
    seen: list[str] = []

    async def note(call: Any, call_next: Any) -> Any:
        seen.append(type(call.message).__name__)
        return await call_next()

    class Wrapped(PingContainer):
        bus_middleware = providers.List(providers.Object(note))

    container = Wrapped()
    container.settings.override(providers.Object(settings_for(db_path)))
    async with running(container):
        assert await container.bus().handle(Ping(n=3)) == "pong 3 via PingUnitOfWork"
    assert seen == ["Ping"]


async def test_a_missing_handler_dependency_fails_when_the_bus_is_built(db_path: Path) -> None:
    """The container surfaces the bus's bootstrap error, naming the parameter."""
    container = ping_container(db_path)
    container.handler_dependencies.override(providers.Dict())
    async with running(container):
        with pytest.raises(BusConfigurationError, match="'greeting'"):
            container.bus()


async def test_required_commands_are_checked_through_the_container(db_path: Path) -> None:
    """`commands` lists command types (or modules) that need a handler."""

    class Orphan(Command):
        pass

    container = ping_container(db_path)
    container.commands.override(providers.List(Orphan))
    async with running(container):
        with pytest.raises(BusConfigurationError, match="no handler for command Orphan"):
            container.bus()


async def test_the_event_bus_is_the_configured_one_and_closes_with_the_container(db_path: Path) -> None:
    """KEEL_EVENT_BUS__BACKEND=memory (the default) gives one InMemoryEventBus, closed at shutdown."""
    from keel.event_bus import InMemoryEventBus, OutgoingMessage

    container = ping_container(db_path)
    async with running(container):
        bus = container.event_bus()
        assert isinstance(bus, InMemoryEventBus)
        assert container.event_bus() is bus
    with pytest.raises(KeelError):
        await bus.publish(OutgoingMessage(topic="t", data=b"{}", message_id="m1"))


def test_the_container_retries_exactly_what_the_infrastructure_calls_transient() -> None:
    """TRANSIENT_ERRORS mirrors keel.infrastructure.database.is_transient."""
    from keel.container import TRANSIENT_ERRORS
    from keel.infrastructure.database import is_transient

    for error_type in TRANSIENT_ERRORS:
        assert is_transient(error_type("x"))
    assert not is_transient(ConfigurationError("x"))
    assert not any(isinstance(ConfigurationError("x"), error_type) for error_type in TRANSIENT_ERRORS)


@pytest.fixture
def restore_repository_defaults() -> Any:
    """configure_repositories changes the process-wide defaults: put them back afterwards."""
    from keel.infrastructure.repository.settings import repository_defaults

    saved = repository_defaults.copy()
    yield
    repository_defaults.restore(saved)


@pytest.mark.usefixtures("restore_repository_defaults")
async def test_starting_the_container_applies_the_repository_settings(db_path: Path) -> None:
    """KEEL_REPOSITORY__* reach the repositories on the container's sessions, not process-wide defaults."""
    from keel import ValidationError
    from keel.infrastructure.repository import SqlAlchemyRepository
    from keel.infrastructure.repository.settings import repository_defaults
    from tests.models import Counter

    container = PingContainer()
    container.settings.override(
        providers.Object(
            KeelSettings(
                database={"url": f"sqlite+aiosqlite:///{db_path}"},
                repository={"max_page_size": 7, "default_page_size": 5},
            )
        )
    )
    async with running(container), container.session_factory()() as session:
        with pytest.raises(ValidationError):
            await SqlAlchemyRepository(session, model=Counter).paginate(size=8)
    assert repository_defaults.max_page_size == 1000


@pytest.mark.usefixtures("restore_repository_defaults")
async def test_production_refuses_the_development_cursor_secret(db_path: Path) -> None:
    """Starting a production container with the default cursor secret fails, naming the variable."""
    container = PingContainer()
    container.settings.override(
        providers.Object(KeelSettings(env="production", database={"url": f"sqlite+aiosqlite:///{db_path}"}))
    )
    with pytest.raises(ConfigurationError) as caught:
        async with running(container):
            pass  # pragma: no cover
    assert "KEEL_REPOSITORY__CURSOR_SECRET" in caught.value.details["variables"]


async def test_the_container_builds_the_event_store_from_its_settings(db_path: Path) -> None:
    """`event_store` is a SqlAlchemyEventStore over the container's session factory, sized by KEEL_EVENT_STORE__*."""
    from keel.config import EventStoreSettings, KeelSettings
    from keel.event_store import SqlAlchemyEventStore

    container = ping_container(db_path)
    settings = container.settings()
    container.settings.override(
        providers.Object(KeelSettings(database=settings.database, event_store=EventStoreSettings(max_event_bytes=4096)))
    )
    async with running(container):
        store = container.event_store()
        assert isinstance(store, SqlAlchemyEventStore)
        assert store.max_event_bytes == 4096
        assert store.session_factory is container.session_factory()
