"""The allocation service as real processes: uvicorn, ``keel outbox relay``, the consumer, ``keel events run``.

A fresh PostgreSQL database migrated with ``alembic upgrade heads`` (the
repository's ``alembic.ini``), the Pub/Sub emulator, and each process started
on its own with keel's settings in its environment; readiness is polled
with a deadline (``wait=False`` starts several together, then
:meth:`Service.wait_ready`), and stopping is SIGTERM with the exit code
checked (:func:`stop_all` stops several in parallel).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.postgres_cluster import free_port
from tests.support.services import create_postgres_database, drop_postgres_database, unavailable

ROOT = Path(__file__).resolve().parents[4]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


@contextmanager
def migrated_database() -> Iterator[str]:
    """A fresh PostgreSQL database upgraded to every head by ``alembic upgrade heads``; its async URL."""
    url, name = create_postgres_database()
    if url is None:
        unavailable("PostgreSQL", name)
    assert url is not None
    try:
        subprocess.run(
            [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "heads"],
            cwd=ROOT,
            env={**os.environ, "KEEL_DATABASE__URL": url},
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield url
    finally:
        drop_postgres_database(name)


def service_environment(database_url: str, emulator: str, project: str, **extra: str) -> dict[str, str]:
    """keel's settings for the three processes: the database, Pub/Sub on the emulator, quick waits."""
    return {
        **os.environ,
        "KEEL_DATABASE__URL": database_url,
        "KEEL_EVENT_BUS__BACKEND": "pubsub",
        "KEEL_EVENT_BUS__PROJECT_ID": project,
        "PUBSUB_EMULATOR_HOST": emulator,
        # A nacked message comes back soon (Pub/Sub's default waits 10 s and more).
        "KEEL_EVENT_BUS__RETRY_MIN_BACKOFF": "0.1",
        "KEEL_EVENT_BUS__RETRY_MAX_BACKOFF": "1",
        # Concurrent allocations of one sku conflict: retry them often, waiting little.
        "KEEL_BUS__MAX_ATTEMPTS": "200",
        "KEEL_BUS__BACKOFF_INITIAL": "0.002",
        "KEEL_BUS__BACKOFF_MAX": "0.05",
        "KEEL_OUTBOX__POLL_INTERVAL": "0.2",
        "KEEL_OUTBOX__BACKOFF_INITIAL": "0.1",
        "KEEL_OUTBOX__BACKOFF_MAX": "1",
        **extra,
    }


@dataclass
class Service:
    """One running process, its combined output in ``log``."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str | None = None
    stopped: bool = field(default=False)
    terminated: bool = field(default=False)
    #: Whether it has started (polled by :meth:`wait_ready`); None: it has no readiness signal.
    ready: Callable[[], bool] | None = None
    #: How long it took to exit after SIGTERM (set by :func:`stop_all`).
    stop_seconds: float | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def check_running(self) -> None:
        assert self.process.poll() is None, (
            f"{self.name} exited with {self.process.returncode}:\n{self.output()[-4000:]}"
        )

    def wait_ready(self, timeout: float = START_TIMEOUT) -> Service:
        """Poll its readiness with a deadline (failing at once if it exits); itself."""
        if self.ready is not None:
            wait_until(self.ready, f"the start of {self.name}", self, timeout)
        return self

    def terminate(self) -> None:
        """SIGTERM, once, if it is still running (:meth:`stop` then waits for it)."""
        if self.process.poll() is None and not self.terminated:
            self.process.send_signal(signal.SIGTERM)
            self.terminated = True

    def stop(self) -> int:
        """SIGTERM, then its exit code (killed after the deadline: then the test fails)."""
        self.terminate()
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise AssertionError(
                f"{self.name} ignored SIGTERM for {STOP_TIMEOUT} s:\n{self.output()[-4000:]}"
            ) from None
        self.stopped = True
        return code

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.stopped = True


def stop_all(services: list[Service]) -> dict[str, int]:
    """SIGTERM to every one at once (they shut down in parallel), then each one's exit code by name.

    Each one's shutdown time lands in its ``stop_seconds``.
    """
    began = time.monotonic()
    for service in services:
        service.terminate()
    running = list(services)
    while running and time.monotonic() - began < STOP_TIMEOUT:
        for service in [s for s in running if s.process.poll() is not None]:
            service.stop_seconds = time.monotonic() - began
            running.remove(service)
        time.sleep(0.05)
    return {service.name: service.stop() for service in services}


def wait_until(
    check: Callable[[], object], what: str, service: Service | None = None, timeout: float = START_TIMEOUT
) -> None:
    """Poll ``check`` until true, failing after ``timeout`` (or at once if ``service`` died)."""
    deadline = time.monotonic() + timeout
    while not check():
        if service is not None:
            service.check_running()
        assert time.monotonic() < deadline, f"{what}: not after {timeout} s" + (
            f"\n{service.output()[-4000:]}" if service is not None else ""
        )
        time.sleep(0.05)


def start(name: str, command: list[str], env: dict[str, str], logs: Path) -> Service:
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Service(name, process, log)


def start_api(env: dict[str, str], logs: Path, workers: int = 1, *, wait: bool = True) -> Service:
    """``uvicorn examples.allocation.api:create_app --factory`` on a free port, once every worker has started.

    With ``workers`` above 1 it is ``--workers N``: a supervisor process and
    N worker processes listening on the one port (on SIGTERM the supervisor
    stops its workers and exits 0). ``wait=False`` returns at
    once (then :meth:`Service.wait_ready`), so that several processes start together.
    """
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "examples.allocation.api:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        # The supervisor kills a worker that does not answer its health check in time (5 s by default):
        # on a loaded machine a worker still importing the application can miss it.
        command += ["--workers", str(workers), "--timeout-worker-healthcheck", "30"]
    service = start("api", command, env, logs)
    service.url = f"http://127.0.0.1:{port}"
    service.ready = lambda: service.output().count("Application startup complete") >= workers
    return service.wait_ready() if wait else service


def start_relay(env: dict[str, str], logs: Path, name: str = "relay") -> Service:
    """``python -m keel outbox relay`` (it has no readiness signal: it picks up whatever is committed)."""
    return start(name, [sys.executable, "-m", "keel", "outbox", "relay"], env, logs)


def start_consumer(
    env: dict[str, str],
    logs: Path,
    subscription_exists: Callable[[], bool],
    name: str = "consumer",
    *,
    wait: bool = True,
) -> Service:
    """``python -m examples.allocation.consumer``, once its subscription exists (what it publishes to then counts)."""
    service = start(name, [sys.executable, "-m", "examples.allocation.consumer"], env, logs)
    service.ready = lambda: "consuming" in service.output() and subscription_exists()
    return service.wait_ready() if wait else service


def start_projection_worker(
    env: dict[str, str], logs: Path, name: str = "projections", *, wait: bool = True
) -> Service:
    """``python -m keel events run`` (``KEEL_EVENT_STORE__PROJECTIONS`` in ``env``), once it says what it runs."""
    service = start(name, [sys.executable, "-m", "keel", "events", "run"], {**env, "PYTHONUNBUFFERED": "1"}, logs)
    service.ready = lambda: "projection(s)" in service.output()
    return service.wait_ready() if wait else service


@contextmanager
def pubsub_clients(emulator: str) -> Iterator[tuple[Any, Any]]:
    """A publisher and a subscriber client of google-cloud-pubsub on ``emulator``."""
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    try:
        yield publisher, subscriber
    finally:
        subscriber.close()
        publisher.transport.close()


def new_project() -> str:
    """A project of its own on the shared emulator: nothing another test made is seen."""
    return f"keel-e2e-{uuid.uuid4().hex[:10]}"


def ensure_topic(publisher: Any, project: str, topic: str) -> str:
    from google.api_core.exceptions import AlreadyExists

    path = str(publisher.topic_path(project, topic))
    with suppress(AlreadyExists):
        publisher.create_topic(name=path, timeout=30)
    return path


def subscribe_to(publisher: Any, subscriber: Any, project: str, topic: str) -> str:
    """A new subscription on ``topic`` (created before anything is published, so it sees everything)."""
    ensure_topic(publisher, project, topic)
    path = str(subscriber.subscription_path(project, f"{topic}-test-{uuid.uuid4().hex[:8]}"))
    subscriber.create_subscription(name=path, topic=publisher.topic_path(project, topic), timeout=30)
    return path


def subscription_exists(subscriber: Any, project: str, name: str) -> Callable[[], bool]:
    from google.api_core.exceptions import NotFound

    def check() -> bool:
        try:
            subscriber.get_subscription(subscription=subscriber.subscription_path(project, name), timeout=10)
        except NotFound:
            return False
        return True

    return check


def publish_json(
    publisher: Any, project: str, topic: str, body: dict[str, Any], attributes: dict[str, str] | None = None
) -> str:
    """Publish ``body`` as JSON (with ``attributes``, e.g. an ``event_id``); the broker's message id."""
    path = ensure_topic(publisher, project, topic)
    return str(publisher.publish(path, json.dumps(body).encode(), **(attributes or {})).result(timeout=30))


def pull_json(
    subscriber: Any, subscription: str, max_messages: int = 100
) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """What ``subscription`` has now (bodies and attributes), acknowledged."""
    from google.api_core.exceptions import DeadlineExceeded

    try:
        response = subscriber.pull(subscription=subscription, max_messages=max_messages, timeout=5)
    except DeadlineExceeded:  # nothing came while it waited
        return []
    received = response.received_messages
    if received:
        subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in received], timeout=10)
    return [(json.loads(m.message.data), dict(m.message.attributes)) for m in received]
