"""A private Pub/Sub emulator a test may stop and start, without touching the one ``scripts/test`` runs.

``private_pubsub`` (a pytest fixture) starts Google's emulator on a free
loopback port and kills it afterwards. The emulator keeps everything in
memory: once stopped, its topics, subscriptions and unacknowledged messages
are gone, so a restart is a fresh broker. Without the emulator installed it
skips (fails under ``KEEL_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres_cluster import free_port
from tests.support.services import unavailable

START_TIMEOUT = 60.0


def launcher() -> str | None:
    """The emulator's launcher from the Debian package, or one on PATH."""
    listed = subprocess.run(
        ["dpkg", "-L", "google-cloud-cli-pubsub-emulator"], capture_output=True, text=True, check=False
    ).stdout
    for line in listed.splitlines():
        if line.endswith("/bin/cloud-pubsub-emulator") and Path(line).is_file():
            return line
    return shutil.which("cloud-pubsub-emulator")


class PrivateEmulator:
    """One emulator process group on a fixed free port: :meth:`stop` kills it, :meth:`start` boots a fresh one."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}/", timeout=1):
                return True
        except OSError:
            return False

    def start(self) -> None:
        # A session of its own: the launcher execs java below it, and stop() signals the whole group.
        self.process = subprocess.Popen(
            [self.binary, "--host=127.0.0.1", f"--port={self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the Pub/Sub emulator did not start on port {self.port}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Kill the emulator's process group (as a crash would) and wait for it."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@pytest.fixture
def private_pubsub() -> Iterator[PrivateEmulator]:
    """A running private emulator, killed afterwards whatever the test did to it."""
    binary = launcher()
    if binary is None:
        unavailable("the Pub/Sub emulator", "google-cloud-cli-pubsub-emulator is not installed")
    assert binary is not None
    emulator = PrivateEmulator(binary)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
