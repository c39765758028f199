"""keel's checks against the real services: the database, Redis, the Pub/Sub emulator and an outbox table."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio  # noqa: F401 -- imported here, so the timed checks below do not time the import
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from keel.config import KeelSettings
from keel.health import (
    HealthRegistry,
    database_check,
    default_health_registry,
    outbox_backlog_check,
    pubsub_check,
    redis_check,
)
from keel.infrastructure.database import create_engine
from tests.support.services import unavailable

REDIS_URL = "redis://127.0.0.1:6379/0"
EMULATOR = "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def run(name: str, check: object, timeout: float = 2.0) -> dict[str, object]:
    registry = HealthRegistry(timeout=timeout)
    registry.register(name, check)  # type: ignore[arg-type]
    return dict((await registry.check()).to_dict()["checks"][name])


async def test_the_database_check_passes_on_a_reachable_database(engine: AsyncEngine) -> None:
    """SELECT 1 through check_database: ok, with the backend in the details."""
    result = await run("database", database_check(engine))
    assert result["status"] == "ok"
    assert result["details"] == {"backend": engine.dialect.name}


async def test_the_database_check_fails_on_a_closed_port_without_showing_the_password() -> None:
    """Nothing listens: not ready, within the timeout, and the error holds no password."""
    url = f"postgresql+asyncpg://app:s3cret-pw@127.0.0.1:{closed_port()}/app"
    engine = create_engine(KeelSettings(database={"url": url, "connect_timeout": 1}))
    try:
        started = time.perf_counter()
        result = await run("database", database_check(engine, timeout=1.5))
        assert time.perf_counter() - started < 2.5
    finally:
        await engine.dispose()
    assert result["status"] == "failed"
    assert "s3cret-pw" not in str(result)


@pytest.fixture
async def redis_up() -> str:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    client = Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except (OSError, RedisError) as exc:
        unavailable("Redis", str(exc))
    finally:
        await client.aclose()
    return REDIS_URL


async def test_the_redis_check_pings_a_real_redis(redis_up: str) -> None:
    """PING answered: ok."""
    assert (await run("redis", redis_check(redis_up)))["status"] == "ok"


async def test_redis_on_a_closed_port_is_not_ready_quickly() -> None:
    """Connection refused: failed at once (well under the timeout), naming the connection error."""
    started = time.perf_counter()
    result = await run("redis", redis_check(f"redis://127.0.0.1:{closed_port()}/0", timeout=2), timeout=3)
    assert time.perf_counter() - started < 1.5
    assert result["status"] == "failed"
    assert "ConnectionError" in str(result["error"])


async def test_the_pubsub_check_fails_on_a_closed_port_and_on_a_server_that_is_not_the_emulator() -> None:
    """No listener: failed; an HTTP server answering 404: failed with the status; a bad host: refused."""
    assert (await run("pubsub", pubsub_check(emulator_host=f"127.0.0.1:{closed_port()}")))["status"] == "failed"

    async def not_found(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_found, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await run("pubsub", pubsub_check(emulator_host=f"127.0.0.1:{port}"))
    assert result["error"] == "the Pub/Sub emulator answered 404 Not Found"
    assert "host:port" in str((await run("pubsub", pubsub_check(emulator_host="nohost")))["error"])
    assert "PROJECT_ID" in str((await run("pubsub", pubsub_check()))["error"])


@pytest.fixture(scope="module")
def emulator_host() -> Iterator[str]:
    """Google's Pub/Sub emulator on a free loopback port, for this module."""
    if not shutil.which("java") or not Path(EMULATOR).exists():
        unavailable("the Pub/Sub emulator", f"{EMULATOR} or java is missing")
    port = closed_port()
    process = subprocess.Popen(
        [EMULATOR, "--host=127.0.0.1", f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None:
                    unavailable("the Pub/Sub emulator", f"it exited with {process.returncode}")
                time.sleep(0.1)  # polling the emulator's port until its deadline
        else:
            unavailable("the Pub/Sub emulator", "it did not listen within 60 s")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.slow
async def test_the_pubsub_check_reaches_the_real_emulator(emulator_host: str) -> None:
    """The emulator answers GET / with 200: ok."""
    result = await run("pubsub", pubsub_check(emulator_host=emulator_host), timeout=10)
    assert result == {"status": "ok", "duration_ms": result["duration_ms"], "details": {"emulator": True}}


OUTBOX = "test_health_outbox"


@pytest.fixture
async def outbox_table(engine: AsyncEngine) -> AsyncIterator[Table]:
    """An outbox-shaped table of the tests' own (the real keel_outbox belongs to the outbox's migrations)."""
    table = Table(
        OUTBOX,
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("topic", String(50)),
        Column("created_at", DateTime(timezone=True)),
        Column("published_at", DateTime(timezone=True), nullable=True),
    )
    async with engine.begin() as conn:
        await conn.run_sync(table.drop, checkfirst=True)
        await conn.run_sync(table.create)
    yield table
    async with engine.begin() as conn:
        await conn.run_sync(table.drop)


async def test_the_outbox_check_counts_waiting_rows_against_the_threshold(
    engine: AsyncEngine, outbox_table: Table
) -> None:
    """Relayed rows don't count; more waiting rows than the threshold: not ready, with backlog and age."""
    now = datetime.now(UTC)
    rows = [
        {"id": i, "topic": "t", "created_at": now - timedelta(seconds=60 - i), "published_at": None} for i in range(3)
    ]
    rows.append({"id": 9, "topic": "t", "created_at": now - timedelta(hours=1), "published_at": now})
    async with engine.begin() as conn:
        await conn.execute(insert(outbox_table), rows)
    ok = await run("outbox", outbox_backlog_check(engine, max_backlog=3, table=OUTBOX))
    assert ok["status"] == "ok"
    details = ok["details"]
    assert isinstance(details, dict)
    assert details["backlog"] == 3
    assert 55 < details["oldest_age_s"] < 120
    failing = await run("outbox", outbox_backlog_check(engine, max_backlog=2, table=OUTBOX))
    assert failing["status"] == "failed"
    assert failing["error"] == "3 outbox messages wait to be relayed (more than 2)"


async def test_without_an_outbox_table_the_outbox_check_passes_and_says_why(tmp_path: Path) -> None:
    """No keel_outbox (no outbox in this database yet): ok, skipped."""
    engine = create_engine(KeelSettings(database={"url": f"sqlite+aiosqlite:///{tmp_path / 'o.db'}"}))
    try:
        result = await run("outbox", outbox_backlog_check(engine, max_backlog=0))
    finally:
        await engine.dispose()
    assert result["details"] == {"skipped": "no keel_outbox table"}


def test_the_default_registry_registers_what_the_settings_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    """Event loop for liveness; database and outbox with an engine; Redis and Pub/Sub only when configured."""
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    bare = default_health_registry(KeelSettings())
    assert bare.names("liveness") == ["event_loop"]
    assert bare.names("readiness") == []
    engine = create_engine(KeelSettings())
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:8085")
    full = default_health_registry(KeelSettings(health={"redis_url": REDIS_URL, "timeout": 0.5}), engine)
    assert full.names("readiness") == ["database", "outbox", "redis", "pubsub"]
    assert full.timeout == 0.5


def test_the_default_registry_pings_the_caches_redis_when_the_cache_uses_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """No KEEL_HEALTH__REDIS_URL: a cache section with backend redis and a (secret) url is pinged instead."""
    from pydantic import BaseModel, SecretStr

    class CacheSection(BaseModel):
        backend: str = "redis"
        url: SecretStr | None = SecretStr(REDIS_URL)

    class WithCache(KeelSettings):
        cache: CacheSection = CacheSection()  # type: ignore[assignment]  # a stand-in section

    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    assert default_health_registry(WithCache()).names() == ["redis"]
    assert default_health_registry(WithCache(cache=CacheSection(url=None))).names() == []
    assert default_health_registry(WithCache(cache=CacheSection(backend="memory"))).names() == []


async def test_the_outbox_check_on_an_unreachable_database_fails_in_keels_words() -> None:
    """A refused connection: failed with keel's database_unavailable, no host, user or password."""
    url = f"postgresql+asyncpg://app:s3cret-pw@127.0.0.1:{closed_port()}/app"
    engine = create_engine(KeelSettings(database={"url": url, "connect_timeout": 1}))
    try:
        result = await run("outbox", outbox_backlog_check(engine, max_backlog=1))
    finally:
        await engine.dispose()
    assert result["status"] == "failed"
    assert str(result["error"]).startswith("[database_unavailable]")
    assert "s3cret-pw" not in str(result)
    assert "127.0.0.1" not in str(result)


async def test_a_server_that_accepts_and_never_answers_is_not_ready_within_the_timeout() -> None:
    """A frozen Redis and a frozen emulator (they accept, then say nothing): both fail at about the timeout."""
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    registry = HealthRegistry(timeout=0.4)
    registry.register("redis", redis_check(f"redis://127.0.0.1:{port}/0", timeout=0.3))
    registry.register("pubsub", pubsub_check(emulator_host=f"127.0.0.1:{port}", timeout=0.3))
    async with server:
        started = time.perf_counter()
        report = await registry.check()
        elapsed = time.perf_counter() - started
        for writer in held:
            writer.close()
    assert elapsed < 1.5, f"{elapsed:.2f}s for 0.3s timeouts"
    checks = report.to_dict()["checks"]
    assert checks["redis"]["status"] in {"failed", "timed_out"}
    assert checks["pubsub"]["status"] in {"failed", "timed_out"}
    assert report.status == "not_ready"
