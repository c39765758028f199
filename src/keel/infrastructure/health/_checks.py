"""keel's own checks: the database, Redis, Pub/Sub and the outbox backlog; and the default registry.

Each factory returns a :data:`Check` for :meth:`HealthRegistry.register`;
:func:`default_health_registry` registers the ones the settings call for.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData, Table, func, inspect, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from keel.config import KeelSettings
from keel.cross_cutting.telemetry import metrics
from keel.infrastructure.database._translate import translate_db_error
from keel.infrastructure.database.health import check_database
from keel.infrastructure.health._registry import Check, CheckFailed, HealthRegistry

if TYPE_CHECKING:
    from alembic.config import Config

#: The outbox table (the outbox's own module defines it; this check only reads it, if it exists).
OUTBOX_TABLE = "keel_outbox"
#: Columns that, when present, mark an outbox row as relayed (NULL: still waiting).
_RELAYED_COLUMNS = ("published_at", "relayed_at", "sent_at")
#: Columns that, when present, date an outbox row.
_CREATED_COLUMNS = ("created_at", "recorded_at", "occurred_at", "enqueued_at")


def database_check(
    engine: AsyncEngine, *, timeout: float = 2.0, alembic_config: Config | str | Path | None = None
) -> Check:
    """``SELECT 1`` (and, with ``alembic_config``, every migration head applied) through :func:`check_database`."""

    async def database() -> Mapping[str, Any]:
        result = await check_database(engine, timeout=timeout, alembic_config=alembic_config)
        if not result.healthy:
            raise CheckFailed(result.detail)
        return result.extra

    return database


def redis_check(url: str, *, timeout: float = 2.0) -> Check:
    """``PING`` the Redis at ``url`` (redis.asyncio, the ``redis`` extra), with connect and read timeouts."""

    async def redis() -> None:
        try:
            from redis.asyncio import Redis
            from redis.exceptions import RedisError
        except ImportError as exc:
            raise CheckFailed("the redis package is not installed: install keel-framework[redis]") from exc
        client = Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            answered = await client.ping()
        except (RedisError, OSError) as exc:
            # redis's messages name the host and port: the report says what failed, not where.
            raise CheckFailed(f"Redis did not answer PING ({type(exc).__name__})") from exc
        finally:
            await client.aclose()
        if not answered:
            raise CheckFailed("Redis answered PING without PONG")

    return redis


def pubsub_check(*, emulator_host: str | None = None, project_id: str | None = None, timeout: float = 2.0) -> Check:
    """Pub/Sub reachable: the emulator at ``emulator_host`` answers HTTP, or the API lists a topic of the project."""

    async def pubsub() -> Mapping[str, Any]:
        if emulator_host:
            await _http_ok(emulator_host, timeout)
            return {"emulator": True}  # not its address: readiness answers reach clients
        if not project_id:
            raise CheckFailed("no Pub/Sub project configured (KEEL_EVENT_BUS__PROJECT_ID)")
        await asyncio.to_thread(_list_one_topic, project_id, timeout)  # pragma: no cover -- needs the real API
        return {"project_id": project_id}  # pragma: no cover -- needs the real API

    return pubsub


async def _http_ok(host: str, timeout: float) -> None:
    """``GET /`` on ``host:port``: the emulator answers ``200 Ok``."""
    name, _, port = host.rpartition(":")
    if not name or not port.isdigit():
        raise CheckFailed(f"PUBSUB_EMULATOR_HOST must be host:port, not {host!r}")
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(name.strip("[]"), int(port))
        try:
            writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode("ascii"))
            await writer.drain()
            status = (await reader.readline()).decode("latin-1").split()
        finally:
            writer.close()
    if len(status) < 2 or status[1] != "200":
        raise CheckFailed(f"the Pub/Sub emulator answered {' '.join(status[1:]) or 'nothing'}")


def _list_one_topic(project_id: str, timeout: float) -> None:  # pragma: no cover -- needs the real API
    try:
        # Imported by name: the pubsub extra may be absent, and it ships no type information.
        pubsub_v1 = importlib.import_module("google.cloud.pubsub_v1")
    except ImportError as exc:
        raise CheckFailed("google-cloud-pubsub is not installed: install keel-framework[pubsub]") from exc
    client = pubsub_v1.PublisherClient()
    try:
        pages = client.list_topics(request={"project": f"projects/{project_id}", "page_size": 1}, timeout=timeout)
        next(iter(pages), None)
    finally:
        client.transport.close()


def outbox_backlog_check(engine: AsyncEngine, *, max_backlog: int, table: str = OUTBOX_TABLE) -> Check:
    """Fail when more than ``max_backlog`` outbox rows wait to be relayed; also sets the backlog gauges.

    Without the table (keel's migrations not run, or no outbox in this
    version) the check passes and says so. A row waits while its
    ``published_at`` (or ``relayed_at``, ``sent_at``) is NULL; a table with
    none of those columns keeps only waiting rows, so every row counts.
    """

    async def outbox() -> Mapping[str, Any]:
        try:
            return await _measure()
        except (SQLAlchemyError, OSError) as exc:
            # Driver messages can name hosts and values: the report shows keel's words instead.
            raise translate_db_error(exc) or CheckFailed(type(exc).__name__) from exc

    async def _measure() -> Mapping[str, Any]:
        async with engine.connect() as conn:
            found = await conn.run_sync(_reflect, table)
            if found is None:
                return {"skipped": f"no {table} table"}
            waiting = next((found.c[name] for name in _RELAYED_COLUMNS if name in found.c), None)
            created = next((found.c[name] for name in _CREATED_COLUMNS if name in found.c), None)
            columns = [func.count(), func.min(created)] if created is not None else [func.count()]
            query = select(*columns).select_from(found)
            if waiting is not None:
                query = query.where(waiting.is_(None))
            row = (await conn.execute(query)).one()
        backlog = int(row[0])
        details: dict[str, Any] = {"backlog": backlog, "max_backlog": max_backlog}
        metrics().outbox_backlog.set(backlog)
        if created is not None and row[1] is not None:
            oldest = row[1] if row[1].tzinfo else row[1].replace(tzinfo=UTC)
            details["oldest_age_s"] = round((datetime.now(UTC) - oldest).total_seconds(), 3)
            metrics().outbox_oldest_age.set(details["oldest_age_s"])
        if backlog > max_backlog:
            raise CheckFailed(f"{backlog} outbox messages wait to be relayed (more than {max_backlog})")
        return details

    return outbox


def _reflect(conn: Any, table: str) -> Table | None:
    if not inspect(conn).has_table(table):
        return None
    return Table(table, MetaData(), autoload_with=conn)


async def _event_loop() -> None:
    """The process's event loop runs tasks (a blocked loop never gets here within the timeout)."""
    await asyncio.sleep(0)


def default_health_registry(
    settings: KeelSettings,
    engine: AsyncEngine | None = None,
    *,
    alembic_config: Config | str | Path | None = None,
) -> HealthRegistry:
    """A registry with keel's checks for these settings; register your own on it.

    Liveness: the event loop. Readiness: the database and the outbox backlog
    (with ``engine``), Redis (``KEEL_HEALTH__REDIS_URL``, or the cache's
    Redis), Pub/Sub (``PUBSUB_EMULATOR_HOST``, or the event bus's Pub/Sub
    backend). Each check runs under ``KEEL_HEALTH__TIMEOUT``.
    """
    health = settings.health
    registry = HealthRegistry(timeout=health.timeout)
    registry.register("event_loop", _event_loop, liveness=True, readiness=False)
    if engine is not None:
        # check_database stops at the timeout and says why; the registry's own stop is the backstop.
        check = database_check(engine, timeout=health.timeout, alembic_config=alembic_config)
        registry.register("database", check, timeout=health.timeout + 0.5)
        registry.register("outbox", outbox_backlog_check(engine, max_backlog=health.outbox_max_backlog))
    redis_url = health.redis_url or _cache_redis_url(settings)
    if redis_url:
        registry.register("redis", redis_check(redis_url, timeout=health.timeout))
    emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
    event_bus = getattr(settings, "event_bus", None)
    if emulator or getattr(event_bus, "backend", None) == "pubsub":
        project = getattr(event_bus, "project_id", None)
        registry.register("pubsub", pubsub_check(emulator_host=emulator, project_id=project, timeout=health.timeout))
    return registry


def _cache_redis_url(settings: KeelSettings) -> str | None:
    """The cache section's Redis URL when the cache uses Redis (the section arrives with the cache)."""
    cache = getattr(settings, "cache", None)
    if cache is None or getattr(cache, "backend", None) != "redis":
        return None
    for name in ("url", "redis_url"):
        value = getattr(cache, name, None)
        if value:
            secret = getattr(value, "get_secret_value", None)
            return str(secret() if callable(secret) else value)
    return None
