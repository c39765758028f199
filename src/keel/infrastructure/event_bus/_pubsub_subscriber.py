"""One streaming-pull consumer: messages arrive on the client's threads, handlers run on the application's loop.

The client's callback only hands the message over to the loop
(``loop.call_soon_threadsafe``) and returns, so flow control (the client's
``FlowControl``), not its thread pool, bounds how many handlers run at once.
The handler's outcome decides the message's: ack after success, nack after an
exception, so the subscription's retry policy and dead-letter policy apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from keel.cross_cutting.telemetry import start_consumer_span
from keel.domain.ports import IncomingMessage, MessageHandler
from keel.infrastructure.event_bus._options import SubscriptionOptions
from keel.infrastructure.event_bus._running import RunningHandlers
from keel.infrastructure.event_bus._spans import consume_span_attributes

logger = logging.getLogger("keel.event_bus")


def incoming(message: Any, subscription: str) -> IncomingMessage:
    """A received Pub/Sub message as keel's :class:`IncomingMessage`."""
    return IncomingMessage(
        data=bytes(message.data),
        attributes=dict(message.attributes),
        message_id=str(message.message_id),
        subscription=subscription,
        ordering_key=message.ordering_key or None,
        delivery_attempt=message.delivery_attempt,
        publish_time=message.publish_time,
    )


class PubSubSubscription:
    """A running streaming pull of one subscription; ``stop()`` ends it gracefully."""

    def __init__(
        self,
        subscriber: Any,
        path: str,
        name: str,
        handler: MessageHandler,
        options: SubscriptionOptions,
        flow_control: Any,
    ) -> None:
        self.name = name
        self._subscriber = subscriber
        self._path = path
        self._handler = handler
        self._options = options
        self._flow_control = flow_control
        self._loop = asyncio.get_running_loop()
        self._handlers = RunningHandlers()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._pull: Any = None

    def start(self) -> None:
        self._pull = self._subscriber.subscribe(
            self._path, callback=self._received, flow_control=self._flow_control, await_callbacks_on_shutdown=True
        )
        self._pull.add_done_callback(self._pull_ended)

    def _received(self, message: Any) -> None:
        """On a client thread: pass the message to the loop."""
        try:
            self._loop.call_soon_threadsafe(self._begin, message)
        except RuntimeError:  # the application's loop is closed: someone else gets the message
            message.nack()

    def _begin(self, message: Any) -> None:
        """On the loop: run the handler, unless this consumer is stopping."""
        if self._stopping:
            message.nack()
            return
        self._handlers.start(self._handle(message))

    async def _handle(self, message: Any) -> None:
        received = incoming(message, self.name)
        try:
            with start_consumer_span(
                received.attributes, f"{self.name} process", attributes=consume_span_attributes(received, "gcp_pubsub")
            ):
                await self._handler(received)
        except asyncio.CancelledError:
            message.nack()
            raise
        except Exception:
            logger.exception("handler of subscription %s failed on message %s", self.name, message.message_id)
            message.nack()
        else:
            message.ack()

    def _pull_ended(self, future: Any) -> None:
        """On a client thread, when the stream has shut down (asked to, or on an error it cannot recover from)."""
        if not self._stopping and future.exception() is not None:
            logger.error("streaming pull of subscription %s ended: %r", self.name, future.exception())
        # RuntimeError: the loop is already closed, so nobody waits for the event.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._stopped.set)

    async def stop(self) -> None:
        """Take no new messages, let the running handlers ack or nack theirs, then close the stream.

        The stream is closed only after the handlers finished, so their acks
        still reach Pub/Sub; messages the client held but had not handed over
        are nacked for immediate redelivery elsewhere.
        """
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        await self._handlers.drain(self._options.shutdown_timeout)
        if self._pull is None:
            return
        if _half_close(self._pull):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_HALF_CLOSE_GRACE):
                    await self._stopped.wait()
        self._pull.cancel()
        try:
            async with asyncio.timeout(self._options.shutdown_timeout):
                await self._stopped.wait()
        except TimeoutError:
            logger.warning("streaming pull of subscription %s did not shut down in time", self.name)


#: Seconds to let the server end a half-closed stream before cancelling it.
_HALF_CLOSE_GRACE = 2.0


def _half_close(pull: Any) -> bool:
    """End the stream's requests, so the server closes the stream itself; False if the client's internals moved.

    The client's own shutdown cancels the stream (an HTTP/2 RST_STREAM). The
    Pub/Sub emulator (528.0.0) fails to notice a cancelled stream and keeps
    routing the subscription's messages to it, so no later consumer of that
    subscription receives anything. A half-close ends the stream cleanly on
    the emulator and on Pub/Sub alike; the cancel that follows is then a no-op.
    This reaches into the client's private state, hence every ``getattr``.
    """
    manager = getattr(pull, "_StreamingPullFuture__manager", None)
    requests = getattr(getattr(manager, "_rpc", None), "_request_queue", None)
    if requests is None or not hasattr(requests, "put"):
        return False
    requests.put(None)
    return True
