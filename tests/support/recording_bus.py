"""A recording test double of the ``EventBus`` port, with failure injection.

It keeps every message it accepted, in order; ``fail`` decides per message
whether to refuse it (raise :class:`keel.PublishError`), and ``delay`` slows
each publish so a test can catch a relay mid-batch. ``subscribe`` delivers
later publishes to the handler in-process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from keel.cross_cutting.error import PublishError
from keel.domain.ports import IncomingMessage, MessageHandler, OutgoingMessage


class _Subscription:
    def __init__(self, bus: RecordingEventBus, topic: str, handler: MessageHandler) -> None:
        self.bus, self.topic, self.handler = bus, topic, handler

    async def stop(self) -> None:
        self.bus.subscriptions.remove(self)


class RecordingEventBus:
    """Records what it publishes; see the module docstring."""

    def __init__(self, *, fail: Callable[[OutgoingMessage], bool] | None = None, delay: float = 0.0) -> None:
        self.published: list[OutgoingMessage] = []
        self.attempts = 0
        self.fail = fail
        self.delay = delay
        self.closed = False
        self.subscriptions: list[_Subscription] = []
        self.changed = asyncio.Event()

    async def publish(self, message: OutgoingMessage) -> str:
        if self.closed:
            raise PublishError("the bus is closed")
        self.attempts += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None and self.fail(message):
            raise PublishError(f"refused {message.message_id} (injected)")
        self.published.append(message)
        self.changed.set()
        for subscription in list(self.subscriptions):
            if subscription.topic == message.topic:
                await subscription.handler(incoming(message, subscription.topic))
        return f"broker-{len(self.published)}"

    async def subscribe(self, topic: str, subscription: str, handler: MessageHandler, **options: Any) -> _Subscription:
        running = _Subscription(self, topic, handler)
        self.subscriptions.append(running)
        return running

    async def close(self) -> None:
        self.closed = True

    def ids(self) -> list[str]:
        return [message.message_id for message in self.published]

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        """Return once ``count`` messages are published; TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while len(self.published) < count:
                self.changed.clear()
                await self.changed.wait()


def incoming(message: OutgoingMessage, subscription: str = "test", message_id: str | None = None) -> IncomingMessage:
    """``message`` as a subscriber receives it."""
    return IncomingMessage(
        data=message.data,
        attributes=dict(message.attributes),
        message_id=message_id or message.message_id,
        subscription=subscription,
        ordering_key=message.ordering_key,
    )
