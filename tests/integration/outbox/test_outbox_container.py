"""The container writes routed events through its units of work: routes from the wiring or from settings."""

from __future__ import annotations

from pathlib import Path

from dependency_injector import providers

from keel.config import KeelSettings
from keel.container import KeelContainer, running
from keel.orm import Base, keel_metadata
from keel.outbox import OutboxRelay, OutboxRouting, Route
from tests.integration.outbox.conftest import allocate, outbox_rows, seed
from tests.models import Allocated, AppUnitOfWork


class RoutedContainer(KeelContainer[AppUnitOfWork]):
    unit_of_work_class = providers.Object(AppUnitOfWork)
    outbox_routes = providers.Object(OutboxRouting({Allocated: Route("wired", ordering_key=lambda e: e.sku)}))


async def topics_written(container: KeelContainer[AppUnitOfWork]) -> list[object]:
    async with running(container):
        async with container.engine().begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            await conn.run_sync(keel_metadata.create_all)
        await seed(container.unit_of_work, "LAMP")
        await allocate(container.unit_of_work, "LAMP")
        return [row["topic"] for row in await outbox_rows(container.session_factory())]


def settings(tmp_path: Path, **outbox: object) -> KeelSettings:
    return KeelSettings(database={"url": f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"}, outbox=outbox)


async def test_routes_declared_in_the_wiring_are_written(tmp_path: Path) -> None:
    """`outbox_routes` on a container subclass reaches every unit of work it builds."""
    container = RoutedContainer()
    container.settings.override(providers.Object(settings(tmp_path, routes={"Allocated": "from-settings"})))
    assert await topics_written(container) == ["wired"]


async def test_routes_from_settings_apply_when_the_wiring_names_none(tmp_path: Path) -> None:
    """`KEEL_OUTBOX__ROUTES` routes event types by name; the relay provider comes ready."""
    container = KeelContainer[AppUnitOfWork]()
    container.unit_of_work_class.override(providers.Object(AppUnitOfWork))
    container.settings.override(providers.Object(settings(tmp_path, routes={"Allocated": "from-settings"})))
    assert await topics_written(container) == ["from-settings"]
    container.event_bus.override(providers.Object(object()))
    assert isinstance(container.outbox_relay(), OutboxRelay)


async def test_a_disabled_outbox_writes_nothing(tmp_path: Path) -> None:
    """`KEEL_OUTBOX__ENABLED=false` turns the writer off whatever the routes."""
    container = RoutedContainer()
    container.settings.override(providers.Object(settings(tmp_path, enabled=False)))
    assert await topics_written(container) == []
