"""``keel outbox relay|status|retry|purge``: run and look after the transactional outbox.

Everything comes from ``KEEL_*`` settings (the database, ``KEEL_OUTBOX__*``,
and the event bus from ``KEEL_EVENT_BUS__BACKEND``): the relay is generic and
knows nothing of the application.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from keel.config import KeelSettings
    from keel.domain.ports import EventBus, MessageHandler, OutgoingMessage

T = TypeVar("T")
_logger = logging.getLogger("keel.outbox")


def build_event_bus(settings: KeelSettings) -> EventBus:
    """The event bus ``KEEL_EVENT_BUS__BACKEND`` names, for a relay process.

    ``memory`` delivers inside one process, and a relay run as its own
    process has no subscriber there: it logs each message instead (the
    embedded default's relay runs in the application's process, see
    docs/outbox.md). ``pubsub`` is :class:`keel.event_bus.PubSubEventBus`.
    """
    if settings.event_bus.backend == "memory":
        return _LoggingEventBus()
    from keel.event_bus import build_event_bus as from_settings

    return from_settings(settings)


class _LoggingEventBus:
    """The in-process stand-in: a relay process has no subscribers, so it logs each message it accepts."""

    async def publish(self, message: OutgoingMessage) -> str:
        _logger.info("published %s to %r", message.message_id, message.topic)
        return message.message_id

    async def subscribe(self, topic: str, subscription: str, handler: MessageHandler, **options: Any) -> Any:
        raise NotImplementedError("the logging bus has no subscribers")

    async def close(self) -> None:
        """Nothing to release."""


@asynccontextmanager
async def _database() -> AsyncIterator[tuple[KeelSettings, async_sessionmaker[AsyncSession]]]:
    from keel.config import load_settings
    from keel.infrastructure.database import create_engine, create_session_factory

    settings = load_settings()
    engine = create_engine(settings)
    try:
        yield settings, create_session_factory(engine)
    finally:
        await engine.dispose()


def _run(work: Callable[[], Awaitable[T]]) -> T:
    from keel.cross_cutting.error import KeelError

    try:
        return asyncio.run(work())  # type: ignore[arg-type]
    except KeelError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(name="outbox")
def outbox() -> None:
    """The transactional outbox: relay its messages, see its state, retry parked ones."""


@outbox.command(name="relay")
@click.option("--once", is_flag=True, help="Publish one batch of what is due, then exit.")
def relay(once: bool) -> None:
    """Move committed outbox rows to the event bus until SIGTERM (finishing the batch in hand)."""

    async def work() -> None:
        from keel.outbox import OutboxRelay

        async with _database() as (settings, session_factory):
            bus = build_event_bus(settings)
            telemetry = _telemetry(settings, session_factory)
            try:
                runner = OutboxRelay(bus, session_factory, settings=settings.outbox)
                if once:
                    result = await runner.process_batch()
                    click.echo(f"published {result.published}, failed {result.failed}, parked {result.parked}")
                else:
                    await runner.run_until_signalled()
            finally:
                await bus.close()
                if telemetry is not None:
                    telemetry.shutdown()

    _run(work)


def _telemetry(settings: KeelSettings, session_factory: async_sessionmaker[AsyncSession]) -> Any:
    """Under KEEL_TELEMETRY__ENABLED: spans and metrics exported as configured, SQL spans on the relay's engine."""
    if not settings.telemetry.enabled:
        return None
    from keel.telemetry import configure_telemetry, instrument_engine

    engine = session_factory.kw.get("bind")
    if settings.telemetry.sql_spans and engine is not None:
        instrument_engine(engine)
    return configure_telemetry(settings)


@outbox.command(name="status")
@click.option("--limit", default=20, show_default=True, help="Parked messages to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def status(limit: int, as_json: bool) -> None:
    """Pending and parked counts, the age of the oldest pending message, and the parked messages."""

    async def work() -> None:
        from keel.outbox import outbox_status

        async with _database() as (_, session_factory):
            found = await outbox_status(session_factory, limit=limit)
        if as_json:
            click.echo(json.dumps(asdict(found), default=str, indent=2))
            return
        age = "-" if found.oldest_pending_age is None else f"{found.oldest_pending_age:.1f}s"
        click.echo(f"pending: {found.pending}  parked: {found.parked}  published: {found.published}  oldest: {age}")
        for parked in found.parked_messages:
            click.echo(f"parked {parked.id} {parked.event_type} -> {parked.topic} after {parked.attempts} attempts:")
            click.echo(f"    {parked.last_error}")

    _run(work)


@outbox.command(name="retry")
@click.argument("ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Re-queue every parked message.")
def retry(ids: tuple[str, ...], every: bool) -> None:
    """Put parked messages (by id, or --all) back in line with fresh attempts."""
    if not ids and not every:
        raise click.UsageError("name the parked messages to retry, or pass --all")

    async def work() -> int:
        from keel.outbox import retry_parked

        async with _database() as (_, session_factory):
            return await retry_parked(session_factory, None if every else list(ids))

    click.echo(f"re-queued {_run(work)} parked message(s)")


@outbox.command(name="purge")
def purge() -> None:
    """Delete published outbox rows and inbox rows past their retention (the relay also does this hourly)."""

    async def work() -> tuple[int, int]:
        from keel.outbox import purge as purge_rows

        async with _database() as (settings, session_factory):
            return await purge_rows(session_factory, settings.outbox)

    sent, seen = _run(work)
    click.echo(f"deleted {sent} published outbox row(s) and {seen} inbox row(s)")
