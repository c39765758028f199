"""A private PgBouncer in transaction pooling mode, in front of the shared PostgreSQL server.

``pgbouncer_url`` (a session fixture, re-exported by ``tests/conftest.py``)
writes its own ini file into a fresh directory, starts ``pgbouncer`` on a free
loopback port with ``pool_mode = transaction`` and ``auth_type = trust``,
forwarding every database name to 127.0.0.1:5432, and yields the session's
test-database URL rewritten to go through it. PgBouncer is stopped and its
directory removed afterwards. PgBouncer refuses to run as root, so as root it
runs as the ``postgres`` OS user. Without the binary (Debian package
``pgbouncer``) it skips, or fails under ``KEEL_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.support.postgres_cluster import free_port, server_user
from tests.support.services import POSTGRES_ADMIN_URL, unavailable

START_TIMEOUT = 20.0

CONFIG = """\
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = trust
auth_file = {directory}/userlist.txt
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
"""


def find_pgbouncer() -> str | None:
    return shutil.which("pgbouncer") or next(
        (str(path) for path in (Path("/usr/sbin/pgbouncer"), Path("/usr/bin/pgbouncer")) if path.is_file()), None
    )


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pgbouncer_port() -> Iterator[int]:
    """The port of a private PgBouncer (transaction mode) in front of the shared server."""
    binary = find_pgbouncer()
    if binary is None:
        unavailable("PgBouncer", "the `pgbouncer` binary is not installed (apt-get install pgbouncer)")
    user = server_user()
    if user is None:
        unavailable("PgBouncer", "running as root and there is no postgres OS user to run it as")
    assert binary is not None
    assert user is not None
    upstream = make_url(POSTGRES_ADMIN_URL)
    directory = Path(tempfile.mkdtemp(prefix="keel-pgbouncer-"))
    port = free_port()
    (directory / "userlist.txt").write_text(f'"{upstream.username or "postgres"}" ""\n')
    (directory / "pgbouncer.ini").write_text(
        CONFIG.format(
            host=upstream.host or "127.0.0.1", port=upstream.port or 5432, listen_port=port, directory=directory
        )
    )
    if user:
        for path in (directory, *directory.iterdir()):
            shutil.chown(path, user)
    as_user: dict[str, object] = {"user": user, "group": user, "cwd": directory} if user else {}
    process = subprocess.Popen(  # type: ignore[call-overload]
        [binary, str(directory / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **as_user,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _accepts(port):
            if process.poll() is not None or time.monotonic() > deadline:
                log = (directory / "pgbouncer.log").read_text() if (directory / "pgbouncer.log").exists() else ""
                pytest.fail(f"pgbouncer did not start (exit {process.poll()}):\n{log[-2000:]}")
            time.sleep(0.05)
        yield port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # immediate shutdown
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def pgbouncer_url(postgres_url: str, pgbouncer_port: int) -> str:
    """The session's test database, reached through the private PgBouncer in transaction mode."""
    return make_url(postgres_url).set(host="127.0.0.1", port=pgbouncer_port).render_as_string(hide_password=False)
