"""Helpers of the outbox's acceptance tests: sizes from the environment, relay processes, a counting consumer.

``KEEL_ACCEPTANCE_EVENTS`` sets how many events the runs commit: 2,000 by
default (CI), 10,000 under ``KEEL_SOAK=1`` (the issue's figure).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keel.config import EventBusSettings
from keel.domain.ports import IncomingMessage
from keel.outbox import IdempotentConsumer
from tests.integration.outbox.conftest import allocate, seed
from tests.models import AppUnitOfWork
from tests.support.postgres_cluster import free_port
from tests.support.services import unavailable

ROOT = Path(__file__).resolve().parents[3]
TOPIC = "allocations"
SKUS = 20
EVENTS_PER_COMMAND = 10


def event_count() -> int:
    """How many events a run commits: ``KEEL_ACCEPTANCE_EVENTS``, else 10,000 under ``KEEL_SOAK=1``, else 2,000."""
    configured = os.environ.get("KEEL_ACCEPTANCE_EVENTS")
    if configured:
        return int(configured)
    return 10_000 if os.environ.get("KEEL_SOAK") == "1" else 2_000


async def commit_concurrently(uow_factory: Callable[[], AppUnitOfWork], events: int, run: str = "") -> None:
    """``events`` Allocated events from commands of ten, one writer per sku, the skus' writers concurrent.

    Each ``run`` name seeds products of its own.
    """
    skus = [f"SKU{run}{n}" for n in range(SKUS)]
    await seed(uow_factory, *skus)
    commands = events // EVENTS_PER_COMMAND
    assert commands * EVENTS_PER_COMMAND == events, "a multiple of 200 events"
    assert commands % SKUS == 0, "a multiple of 200 events"

    async def writer(sku: str) -> None:
        for _ in range(commands // SKUS):
            await allocate(uow_factory, sku, times=EVENTS_PER_COMMAND)

    await asyncio.gather(*(writer(sku) for sku in skus))


def relay_environment(database_url: str, emulator: str, project: str, **extra: str) -> dict[str, str]:
    """``keel outbox relay``'s settings: the database, Pub/Sub on ``emulator``, short waits."""
    return {
        **os.environ,
        "KEEL_DATABASE__URL": database_url,
        "KEEL_EVENT_BUS__BACKEND": "pubsub",
        "KEEL_EVENT_BUS__PROJECT_ID": project,
        "PUBSUB_EMULATOR_HOST": emulator,
        "KEEL_OUTBOX__BATCH_SIZE": "100",
        "KEEL_OUTBOX__POLL_INTERVAL": "0.2",
        "KEEL_OUTBOX__BACKOFF_INITIAL": "0.2",
        "KEEL_OUTBOX__BACKOFF_MAX": "2",
        "KEEL_OUTBOX__MAX_ATTEMPTS": "1000",
        **extra,
    }


def start_relay(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m keel outbox relay``, its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "keel", "outbox", "relay"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def subscriber_settings(project: str) -> EventBusSettings:
    """A test-side Pub/Sub bus: quick redelivery, a modest number of messages in hand."""
    return EventBusSettings(
        backend="pubsub",
        project_id=project,
        retry_min_backoff=0.1,
        retry_max_backoff=1,
        flow_control_max_messages=50,
    )


async def create_counter(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS acceptance_counter"))
        await conn.execute(text("CREATE TABLE acceptance_counter (id INTEGER PRIMARY KEY, applied INTEGER NOT NULL)"))
        await conn.execute(text("INSERT INTO acceptance_counter VALUES (1, 0)"))


async def counter(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT applied FROM acceptance_counter"))).scalar_one())


class CountingConsumer:
    """Counts every delivery by ``event_id``, then applies it once through the inbox (the counter rises by one)."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.deliveries: Counter[str] = Counter()

        async def add_one(message: IncomingMessage, uow: AppUnitOfWork) -> None:
            await uow.session.execute(text("UPDATE acceptance_counter SET applied = applied + 1 WHERE id = 1"))

        self.inbox = IdempotentConsumer("acceptance-counter", add_one, lambda: AppUnitOfWork(session_factory))

    async def __call__(self, message: IncomingMessage) -> None:
        self.deliveries[message.attributes["event_id"]] += 1
        await self.inbox(message)


def emulator_launcher() -> str:
    """The Pub/Sub emulator's launcher from the Debian package (skip, or fail in CI, without it)."""
    try:
        listing = subprocess.run(
            ["dpkg", "-L", "google-cloud-cli-pubsub-emulator"], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        listing = ""
    found = [line for line in listing.splitlines() if line.endswith("/bin/cloud-pubsub-emulator")]
    if not found:
        unavailable("the Pub/Sub emulator", "google-cloud-cli-pubsub-emulator is not installed")
    return found[0]


class PrivateEmulator:
    """An emulator of the test's own on a free port, which the test may freeze (never the shared one)."""

    def __init__(self, log: Path) -> None:
        port = free_port()
        self.host = f"127.0.0.1:{port}"
        with log.open("wb") as out:
            # A session of its own: the launcher runs java as a child, and the signals go to both.
            self.process = subprocess.Popen(
                [emulator_launcher(), "--host=127.0.0.1", f"--port={port}"],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.log = log

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}/", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    async def started(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.answers():
            assert self.process.poll() is None, f"the emulator exited:\n{self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"the emulator did not answer:\n{self.log.read_text()[-3000:]}"
            await asyncio.sleep(0.2)

    def freeze(self) -> None:
        os.killpg(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGCONT)
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
