"""The soak's Pub/Sub side: the example's consumer fed ``change_batch_quantity``, ``line_allocated`` collected.

With the emulator (``PUBSUB_EMULATOR_HOST``), :mod:`benchmarks.soak` runs
the relay on Pub/Sub and ``python -m examples.allocation.consumer`` beside
the API, in a project of its own. During the HTTP load a
:class:`ChangePublisher` resizes the batches of the ``RESIZED`` skus with
``change_batch_quantity`` messages, some published twice with the same
``event_id`` attribute (the inbox key, :func:`keel.outbox.message_key`), at
once or a little later; a :class:`Collector` holds a subscription of its
own on ``line_allocated`` and counts every delivery by ``event_id``.
:func:`check_consumed` then holds the consumer to exactly once (one inbox
row, one processed-command record and one succeeded audit row per distinct
message) and the relay to "every allocation's message arrived".
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from examples.allocation.consumer import CONSUMER
from examples.allocation.messages import CHANGE_BATCH_QUANTITY, LINE_ALLOCATED
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from benchmarks.soak import SoakReport

#: Skus whose batches the change_batch_quantity messages resize (batch sizes); clients order them too. Small,
#: so even a slow run allocates past what a resize leaves (lines deallocated, then reallocated or out of stock).
RESIZED = {f"RESIZED-{n}": (8, 8) for n in range(2)}
#: A resize sets a batch to this many units.
RESIZE_RANGE = (2, 20)
#: Seconds between two change_batch_quantity messages; every third is published twice.
MESSAGE_INTERVAL = 0.25


def environment(emulator: str, project: str) -> dict[str, str]:
    """keel's settings for the relay and the consumer on the emulator (as in the example's e2e tests)."""
    return {
        "KEEL_EVENT_BUS__BACKEND": "pubsub",
        "KEEL_EVENT_BUS__PROJECT_ID": project,
        "PUBSUB_EMULATOR_HOST": emulator,
        # A nacked message comes back soon (Pub/Sub's default waits 10 s and more).
        "KEEL_EVENT_BUS__RETRY_MIN_BACKOFF": "0.1",
        "KEEL_EVENT_BUS__RETRY_MAX_BACKOFF": "1",
        "KEEL_OUTBOX__BACKOFF_INITIAL": "0.1",
        "KEEL_OUTBOX__BACKOFF_MAX": "1",
    }


def new_project() -> str:
    """A project of its own on the (possibly shared) emulator: nothing another run made is seen."""
    return f"keel-soak-{uuid.uuid4().hex[:10]}"


class Collector:
    """A streaming pull on a new ``line_allocated`` subscription: bodies by ``event_id``, deliveries counted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.deliveries: Counter[str] = Counter()
        self.bodies: dict[str, dict[str, Any]] = {}

    def __call__(self, message: Any) -> None:
        key = message.attributes.get("event_id") or message.message_id
        body = json.loads(message.data)
        with self._lock:
            self.deliveries[key] += 1
            self.bodies[key] = body
        message.ack()

    def received(self) -> set[str]:
        with self._lock:
            return set(self.deliveries)

    def snapshot(self) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
        """Deliveries per ``event_id`` and the bodies, as they are now."""
        with self._lock:
            return dict(self.deliveries), dict(self.bodies)


@dataclass
class ChangePublisher:
    """Publishes ``change_batch_quantity`` messages until stopped; remembers each distinct one by its key."""

    publisher: Any
    topic: str
    batches: list[str]
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    #: inbox key (``event_id``) -> body, for every distinct message.
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    _futures: list[Future[str]] = field(default_factory=list)
    _run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def _publish(self, key: str) -> None:
        data = json.dumps(self.sent[key]).encode()
        # event_id is the inbox key; correlation_id ties the command's audit row to the message.
        self._futures.append(self.publisher.publish(self.topic, data, event_id=key, correlation_id=key))

    async def run(self, done: asyncio.Event) -> None:
        """One message every ``MESSAGE_INTERVAL`` s until ``done``; every third twice (at once or later)."""
        later: list[str] = []
        for number in itertools.count():
            if done.is_set():
                break
            key = f"cbq-{self._run}-{number}"
            self.sent[key] = {"batchref": self.rng.choice(self.batches), "qty": self.rng.randint(*RESIZE_RANGE)}
            self._publish(key)
            if number % 3 == 0:
                if number % 2 == 0:  # both deliveries in hand at once: the second waits on the inbox row
                    self._publish(key)
                else:  # applied by then, most likely: the inbox row or the command record refuses it
                    later.append(key)
            if later and number % 3 == 2:
                self._publish(later.pop(0))
            with suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), MESSAGE_INTERVAL)
        for key in later:
            self._publish(key)
        await asyncio.to_thread(lambda: [future.result(timeout=60) for future in self._futures])

    @property
    def publications(self) -> int:
        """Messages published, duplicates included."""
        return len(self._futures)


@dataclass
class PubSub:
    """Clients on the emulator for one soak run, its project and the test subscription's collector."""

    emulator: str
    project: str
    publisher: Any
    subscriber: Any
    collector: Collector

    def topic(self, name: str) -> str:
        return str(self.publisher.topic_path(self.project, name))

    def ensure_topic(self, name: str) -> str:
        from google.api_core.exceptions import AlreadyExists

        path = self.topic(name)
        with suppress(AlreadyExists):
            self.publisher.create_topic(name=path, timeout=30)
        return path

    def subscription_exists(self, name: str) -> bool:
        from google.api_core.exceptions import NotFound

        try:
            self.subscriber.get_subscription(subscription=self.subscriber.subscription_path(self.project, name))
        except NotFound:
            return False
        return True


@contextmanager
def connected(emulator: str) -> Iterator[PubSub]:
    """Pub/Sub clients on ``emulator``, a new project, and a subscription on ``line_allocated`` being pulled.

    The subscription exists before the relay starts, so it sees every message the relay publishes.
    """
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator
    import google.cloud.pubsub_v1 as pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    pubsub = PubSub(emulator, new_project(), publisher, subscriber, Collector())
    try:
        path = str(subscriber.subscription_path(pubsub.project, f"{LINE_ALLOCATED}-soak"))
        subscriber.create_subscription(name=path, topic=pubsub.ensure_topic(LINE_ALLOCATED), timeout=30)
        pubsub.ensure_topic(CHANGE_BATCH_QUANTITY)
        flow = pubsub_v1.types.FlowControl(max_messages=1000)
        pulling = subscriber.subscribe(path, pubsub.collector, flow_control=flow)
        try:
            yield pubsub
        finally:
            pulling.cancel()
            with suppress(Exception):
                pulling.result(timeout=30)
    finally:
        subscriber.close()
        publisher.transport.close()


async def _keys(engine: AsyncEngine, statement: str, **params: Any) -> list[str]:
    async with engine.connect() as conn:
        return [str(key) for key in (await conn.execute(text(statement), params)).scalars().all()]


INBOX_KEYS = "SELECT message_key FROM keel_inbox WHERE consumer = :consumer"
PUBLISHED_IDS = "SELECT id FROM keel_outbox WHERE status = 'published' AND topic = :topic"


async def consumed(engine: AsyncEngine, pubsub: PubSub, changes: ChangePublisher) -> bool:
    """Whether every distinct message is in the inbox and every published ``line_allocated`` row was received."""
    inbox = set(await _keys(engine, INBOX_KEYS, consumer=CONSUMER))
    published = set(await _keys(engine, PUBLISHED_IDS, topic=LINE_ALLOCATED))
    return set(changes.sent) <= inbox and published <= pubsub.collector.received()


async def check_consumed(engine: AsyncEngine, pubsub: PubSub, changes: ChangePublisher, report: SoakReport) -> None:
    """Exactly once for the consumer, nothing lost by the relay; figures and violations go into ``report``."""
    sent = set(changes.sent)
    inbox = await _keys(engine, INBOX_KEYS, consumer=CONSUMER)
    recorded = await _keys(
        engine, "SELECT command_id FROM keel_processed_commands WHERE command_type = 'ChangeBatchQuantity'"
    )
    audited = await _keys(
        engine,
        "SELECT command_id FROM keel_audit WHERE message_type = 'ChangeBatchQuantity' AND outcome = 'succeeded'",
    )
    async with engine.connect() as conn:
        allocations = (
            await conn.execute(
                text(
                    "SELECT l.orderid, l.sku, l.qty, b.reference FROM allocations a "
                    "JOIN order_lines l ON l.id = a.orderline_id JOIN batches b ON b.id = a.batch_id"
                )
            )
        ).all()
    published = set(await _keys(engine, PUBLISHED_IDS, topic=LINE_ALLOCATED))

    report.messages_published = len(sent)
    report.messages_publications = changes.publications
    report.messages_applied = len(set(inbox) & sent)
    for what, keys in (("inbox rows", inbox), ("processed-command records", recorded), ("audit rows", audited)):
        counts = Counter(keys)
        wrong = {
            "missing": sorted(sent - set(counts)),
            "doubled": sorted(k for k, n in counts.items() if n > 1),
            "never sent": sorted(set(counts) - sent),
        }
        if any(wrong.values()):
            found = ", ".join(f"{len(keys)} {how} (e.g. {keys[:3]})" for how, keys in wrong.items() if keys)
            report.violations.append(f"change_batch_quantity {what}: {found}")

    deliveries, bodies = pubsub.collector.snapshot()
    report.line_allocated_received = len(deliveries)
    report.line_allocated_redelivered = sum(n - 1 for n in deliveries.values())
    if published - set(deliveries):
        report.violations.append(f"{len(published - set(deliveries))} published line_allocated messages never arrived")
    if set(deliveries) - published:
        report.violations.append(f"{len(set(deliveries) - published)} line_allocated messages not from the outbox")
    arrived = {(b["orderid"], b["sku"], b["qty"], b["batchref"]) for b in bodies.values()}
    unannounced = [row for row in allocations if tuple(row) not in arrived]
    if unannounced:
        report.violations.append(f"{len(unannounced)} allocations without their line_allocated message")
