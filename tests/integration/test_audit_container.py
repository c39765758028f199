"""The container audits by default; KEEL_SECURITY__AUDIT=false turns it off; requires is enforced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from sqlalchemy import select

from keel import AuthorizationError, Command
from keel.config import KeelSettings
from keel.container import KeelContainer, running
from keel.infrastructure.database.tables import audit
from keel.orm import Base, keel_metadata
from keel.security import Principal, as_principal, requires
from tests.models import AppUnitOfWork, Counter


class Tick(Command):
    counter_id: int


@requires("tick")
async def tick(cmd: Tick, uow: AppUnitOfWork) -> None:
    async with uow:
        uow.counters.add(Counter(id=cmd.counter_id, value=1))
        await uow.commit()


class TickContainer(KeelContainer[AppUnitOfWork]):
    unit_of_work_class = providers.Object(AppUnitOfWork)
    command_handlers = providers.Dict({Tick: tick})


async def handled(tmp_path: Path, settings: KeelSettings | None = None) -> tuple[list[Any], int, bool]:
    """Handle one allowed and one refused Tick; return (audit rows, counters, bus.audit)."""
    container = TickContainer()
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    container.settings.override(providers.Object(settings or KeelSettings(database={"url": url})))
    async with running(container):
        async with container.engine().begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            await conn.run_sync(keel_metadata.create_all)
        bus = container.bus()
        with as_principal(Principal(id="clock", permissions=frozenset({"tick"}))):
            await bus.handle(Tick(counter_id=1))
        with as_principal(Principal(id="intruder")), pytest.raises(AuthorizationError):
            await bus.handle(Tick(counter_id=2))
        async with container.session_factory()() as session:
            rows = list((await session.execute(select(audit).order_by(audit.c.occurred_at))).all())
            counters = len((await session.execute(select(Counter.id))).all())
        return rows, counters, bus.audit


async def test_the_containers_bus_audits_every_command_by_default(tmp_path: Path) -> None:
    """One succeeded and one denied row; the denied command wrote nothing."""
    rows, counters, audit_on = await handled(tmp_path)
    assert audit_on
    assert [(row.outcome, row.principal_id) for row in rows] == [("succeeded", "clock"), ("denied", "intruder")]
    assert all(row.correlation_id for row in rows)
    assert counters == 1


async def test_keel_security_audit_false_turns_auditing_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The variable reaches the bus's audit flag: no rows, while requires still refuses."""
    monkeypatch.setenv("KEEL_SECURITY__AUDIT", "false")
    monkeypatch.setenv("KEEL_DATABASE__URL", f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}")
    rows, counters, audit_on = await handled(tmp_path, KeelSettings(_env_file=None))
    assert not audit_on
    assert rows == []
    assert counters == 1
