"""Find the real services the tests talk to; skip or fail when one is absent.

Under ``KEEL_REQUIRE_SERVICES=1`` (set by ``.ci/run``) an absent service fails
the run instead of skipping, so CI can never go green by skipping.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

import pytest

POSTGRES_ADMIN_URL = os.environ.get("KEEL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def services_required() -> bool:
    return os.environ.get("KEEL_REQUIRE_SERVICES") == "1"


def unavailable(service: str, reason: str) -> None:
    """Skip (or fail, under KEEL_REQUIRE_SERVICES=1) because ``service`` is absent."""
    message = f"{service} is not available: {reason}"
    if services_required():
        pytest.fail(f"{message} (KEEL_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)


async def _admin(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def create_postgres_database() -> tuple[str | None, str]:
    """Create a throwaway database for this test session: (async url, error)."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return None, "asyncpg is not installed (pip install 'keel-framework[postgres]')"
    name = f"keel_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError) as exc:
        return None, f"cannot reach {POSTGRES_ADMIN_URL}: {exc}"
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}", name


def drop_postgres_database(name: str) -> None:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pubsub_emulator_host() -> str:
    """The Pub/Sub emulator's ``host:port`` (``PUBSUB_EMULATOR_HOST``), after checking that it answers.

    ``./scripts/test`` starts the emulator and sets the variable; without it the
    test skips (fails under ``KEEL_REQUIRE_SERVICES=1``).
    """
    host = os.environ.get("PUBSUB_EMULATOR_HOST", "")
    if not host:
        unavailable("the Pub/Sub emulator", "PUBSUB_EMULATOR_HOST is not set (./scripts/test starts one and sets it)")
    name, _, port = host.rpartition(":")
    try:
        socket.create_connection((name or "127.0.0.1", int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        unavailable("the Pub/Sub emulator", f"nothing answers at PUBSUB_EMULATOR_HOST={host}: {exc}")
    return host
