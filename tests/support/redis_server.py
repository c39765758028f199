"""Redis for the cache tests: the shared server on 6379, or a private ``redis-server`` a test may stop.

``shared_redis_url`` pings 127.0.0.1:6379 (``KEEL_TEST_REDIS_URL`` elsewhere)
and skips without it (fails under ``KEEL_REQUIRE_SERVICES=1``). Tests that
stop or freeze Redis use :class:`PrivateRedis` on a free loopback port: the
shared server is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres_cluster import free_port
from tests.support.services import unavailable

SHARED_REDIS_URL = os.environ.get("KEEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
START_TIMEOUT = 10.0


def _answers(host: str, port: int) -> bool:
    """Whether a Redis server answers PING on host:port (raw RESP, no client needed)."""
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def shared_redis_url() -> str:
    """The shared Redis, or a skip (a failure under KEEL_REQUIRE_SERVICES=1)."""
    from urllib.parse import urlsplit

    parts = urlsplit(SHARED_REDIS_URL)
    if not _answers(parts.hostname or "127.0.0.1", parts.port or 6379):
        unavailable("Redis", f"nothing answers at {SHARED_REDIS_URL}")
    return SHARED_REDIS_URL


class PrivateRedis:
    """A ``redis-server`` of the test's own, without persistence; :meth:`stop`, :meth:`start` and :meth:`freeze` it."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers("127.0.0.1", self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Kill the server (as a crash would: clients see their connections drop)."""
        process, self.process = self.process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGCONT)
            process.kill()
            process.wait(timeout=10)

    def freeze(self) -> None:
        """SIGSTOP the server: connections stay open and nothing answers (a partition)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A running private Redis, killed afterwards whatever the test did to it."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server", "the binary is not on PATH")
    assert binary is not None
    with tempfile.TemporaryDirectory(prefix="keel-redis-") as directory:
        server = PrivateRedis(binary, Path(directory))
        server.start()
        try:
            yield server
        finally:
            server.stop()
