"""A private PostgreSQL cluster for fault tests: freeze it, kill it, restart it, without touching the shared server.

``private_postgres`` (a pytest fixture, re-exported by ``tests/conftest.py``)
runs ``initdb`` in a fresh directory and starts ``postgres`` on a free
loopback port; :meth:`PrivateCluster.freeze` stops the postmaster and every
backend with SIGSTOP (as a network partition looks to a client: the socket
stays open and nothing answers). The cluster is stopped and removed
afterwards, thawed first if a test left it frozen. As root, the server runs
as the ``postgres`` OS user (PostgreSQL refuses to run as root), switched to
by ``subprocess`` itself rather than ``runuser``: runuser stays between us
and the postmaster and stops itself when its child is stopped, and SIGCONT to
the postmaster does not wake it again. Without the binaries it skips, or
fails under ``KEEL_REQUIRE_SERVICES=1``.

``replicated_postgres`` (session-scoped) makes a primary with streaming
replication and a hot-standby replica of it, copied with ``pg_basebackup -R``
and started on another free port; both are stopped and removed at the end.
Tests may stop, restart or pause the replica, and put it back as they found
it. :func:`replicated_clusters` is the same without pytest (the ``replicas``
benchmark uses it).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.services import unavailable

#: Where Debian/Ubuntu install the server binaries, newest major version first.
BINARY_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
START_TIMEOUT = 30.0


def find_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``, or None."""
    for directory in BINARY_DIRS:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("postgres") else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PrivateCluster:
    """One running cluster: its data directory, port and the processes to signal."""

    bin_dir: Path
    data_dir: Path
    port: int
    user: str | None
    process: subprocess.Popen[bytes] | None = None
    frozen: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        """An async (asyncpg) URL to the cluster's ``postgres`` database."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_user(self) -> dict[str, object]:
        # cwd: the postgres user may not be allowed into the caller's working directory.
        return {"user": self.user, "group": self.user, "cwd": self.data_dir.parent} if self.user else {}

    def _run(self, *args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, timeout=120, **self._as_user())  # type: ignore[call-overload]

    def base_backup_to(self, data_dir: Path, port: int) -> PrivateCluster:
        """A replica of this (running) cluster in ``data_dir``: ``pg_basebackup -R``, streaming WAL."""
        self._run(
            str(self.bin_dir / "pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-D",
            str(data_dir),
            "-R",
            "-X",
            "stream",
            "--no-sync",
        )
        return PrivateCluster(self.bin_dir, data_dir, port, self.user)

    def init(self) -> None:
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        """Start the server and wait (polling, with a deadline) until it accepts connections."""
        self.process = subprocess.Popen(  # type: ignore[call-overload]
            [
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-k",
                str(self.data_dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=40",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **self._as_user(),
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._accepts_connections():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the private PostgreSQL cluster did not start (exit {self.process.poll()})")
            time.sleep(0.05)

    def _accepts_connections(self) -> bool:
        result = subprocess.run(
            [str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"], check=False
        )
        return result.returncode == 0

    def postmaster_pid(self) -> int:
        assert self.process is not None, "the cluster is not running"
        return self.process.pid

    def server_pids(self) -> list[int]:
        """The postmaster and every process below it (backends, checkpointer, WAL writer...)."""
        found = [self.postmaster_pid()]
        index = 0
        while index < len(found):
            found += _children(found[index])
            index += 1
        return found

    def freeze(self) -> None:
        """SIGSTOP the postmaster and all its processes: connections stay open, nothing answers."""
        self.frozen = self.server_pids()
        for pid in self.frozen:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT every process :meth:`freeze` stopped."""
        for pid in self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = []

    def stop(self) -> None:
        """Thaw if frozen, stop fast (SIGINT: abort sessions, shut down cleanly), and wait."""
        self.thaw()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def server_user() -> str | None:
    """The OS user to run the server as: ``postgres`` when we are root, else ourselves ("")."""
    if os.geteuid() != 0:
        return ""
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return "postgres"


class ClusterUnavailableError(RuntimeError):
    """The machine cannot run a private cluster (no binaries, or no OS user to run them as)."""


def _requirements() -> tuple[Path, str]:
    bin_dir = find_binaries()
    if bin_dir is None:
        raise ClusterUnavailableError("initdb/postgres not found under /usr/lib/postgresql/*/bin")
    user = server_user()
    if user is None:
        raise ClusterUnavailableError("running as root and there is no postgres OS user")
    return bin_dir, user


@contextmanager
def _cluster_base(user: str) -> Iterator[Path]:
    """A fresh directory ``user`` (the server's OS user; "" for ourselves) owns, removed afterwards."""
    # Not pytest's tmp_path: as root that lies under a 0700 directory the postgres user cannot enter.
    base = Path(tempfile.mkdtemp(prefix="keel-private-pg-"))
    try:
        if user:
            shutil.chown(base, user)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def private_cluster(*settings: str) -> Iterator[PrivateCluster]:
    """A fresh running cluster; ``settings`` are extra ``name=value`` lines for its postgresql.conf."""
    bin_dir, user = _requirements()
    with _cluster_base(user) as base:
        data_dir = base / "data"
        data_dir.mkdir()
        if user:
            shutil.chown(data_dir, user)
        cluster = PrivateCluster(bin_dir, data_dir, free_port(), user or None)
        try:
            cluster.init()
            if settings:
                with (data_dir / "postgresql.conf").open("a") as conf:
                    conf.write("".join(f"{line}\n" for line in settings))
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


@dataclass
class ReplicatedPair:
    """A primary and its streaming hot-standby replica."""

    primary: PrivateCluster
    replica: PrivateCluster


@contextmanager
def replicated_clusters() -> Iterator[ReplicatedPair]:
    """A primary with streaming replication and a replica of it, stopped and removed afterwards."""
    # The replica copies this configuration. Replay waits for conflicting standby queries rather
    # than cancelling them (the default cancels after 30 s, and at once after a paused replay).
    settings = ("wal_level = replica", "max_wal_senders = 5", "hot_standby = on", "max_standby_streaming_delay = -1")
    with private_cluster(*settings) as primary:
        replica_dir = primary.data_dir.parent / "replica"
        replica = primary.base_backup_to(replica_dir, free_port())
        try:
            replica.start()
            yield ReplicatedPair(primary, replica)
        finally:
            replica.stop()


@pytest.fixture
def private_postgres() -> Iterator[PrivateCluster]:
    """A fresh PostgreSQL cluster of this test's own, stopped and removed afterwards."""
    try:
        with private_cluster() as cluster:
            yield cluster
    except ClusterUnavailableError as exc:
        unavailable("a private PostgreSQL cluster", str(exc))


@pytest.fixture(scope="session")
def replicated_postgres() -> Iterator[ReplicatedPair]:
    """A private primary and streaming replica for this test session (see the module docstring)."""
    try:
        with replicated_clusters() as pair:
            yield pair
    except ClusterUnavailableError as exc:
        unavailable("a private primary and replica", str(exc))
