"""``PubSubEventBus``: the event bus on Google Cloud Pub/Sub (google-cloud-pubsub).

Publishing goes through the client's batching publisher; its future is
awaited through ``asyncio.wrap_future``, so the loop never blocks on the
broker. Subscribing runs a streaming pull whose handlers run on the
application's loop (see ``_pubsub_subscriber``). Topics and subscriptions are
created on first use (see ``_pubsub_admin``). ``PUBSUB_EMULATOR_HOST`` is read
by the client itself: when set, it talks to that emulator, without credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
from google.api_core import exceptions as api

from keel._event_bus_settings import EventBusSettings
from keel.cross_cutting.error import ConfigurationError, PublishError
from keel.cross_cutting.telemetry import start_producer_span
from keel.domain.ports import MessageHandler, OutgoingMessage
from keel.infrastructure.event_bus._options import SubscriptionOptions, check_name, outgoing_attributes
from keel.infrastructure.event_bus._pubsub_admin import PubSubAdmin
from keel.infrastructure.event_bus._pubsub_errors import bounded_retry, publish_error
from keel.infrastructure.event_bus._pubsub_subscriber import PubSubSubscription
from keel.infrastructure.event_bus._spans import publish_span_attributes

logger = logging.getLogger("keel.event_bus")
#: OpenTelemetry's ``messaging.system`` value for Pub/Sub.
_SYSTEM = "gcp_pubsub"


class PubSubEventBus:
    """An :class:`~keel.domain.ports.EventBus` on Google Cloud Pub/Sub.

    ``settings`` are the ``KEEL_EVENT_BUS__*`` section (batching, flow
    control, retry and dead-letter policy, ordering); ``project_id`` overrides
    its ``project_id``. One bus holds one publisher and one subscriber client:
    share it across the application, and ``close()`` it at shutdown.
    """

    def __init__(self, settings: EventBusSettings | None = None, *, project_id: str | None = None) -> None:
        settings = settings or EventBusSettings()
        project = project_id or settings.project_id
        if not project:
            raise ConfigurationError(
                "PubSubEventBus needs a project id (KEEL_EVENT_BUS__PROJECT_ID)",
                variables=["KEEL_EVENT_BUS__PROJECT_ID"],
            )
        self.project_id = project
        self.settings = settings
        self.defaults = SubscriptionOptions.from_settings(settings)
        self._publisher = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(
                max_bytes=settings.publish_batch_max_bytes,
                max_latency=settings.publish_batch_max_latency,
                max_messages=settings.publish_batch_max_messages,
            ),
            publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=settings.ordering_enabled),
        )
        self._subscriber = pubsub_v1.SubscriberClient()
        self._admin = PubSubAdmin(self._publisher, self._subscriber, project, settings.request_timeout)
        self._subscriptions: set[PubSubSubscription] = set()
        self._retry = bounded_retry(settings.publish_timeout)
        self._closed = False

    async def publish(self, message: OutgoingMessage) -> str:
        """Publish ``message``; the broker's message id. ``PublishError`` (``retryable`` or not) on failure."""
        if self._closed:
            raise PublishError("the event bus is closed", topic=message.topic)
        attributes = outgoing_attributes(message)
        key = (message.ordering_key or "") if self.settings.ordering_enabled else ""
        path = await self._admin.ensure_topic(message.topic)
        with start_producer_span(
            attributes, f"{message.topic} publish", attributes=publish_span_attributes(message, _SYSTEM)
        ):
            return await self._publish(message, path, key, attributes)

    async def _publish(self, message: OutgoingMessage, path: str, key: str, attributes: dict[str, str]) -> str:
        try:
            future = self._publisher.publish(
                path,
                message.data,
                ordering_key=key,
                retry=self._retry,
                timeout=self.settings.publish_timeout,
                **attributes,
            )
            # With ordering on, the client retries a keyed publish forever; this bounds the caller's wait.
            async with asyncio.timeout(self.settings.publish_timeout):
                broker_id = await asyncio.wrap_future(future)
        except Exception as exc:
            self._recover(message.topic, path, key, exc)
            raise publish_error(exc, topic=message.topic, message_id=message.message_id) from exc
        return str(broker_id)

    def _recover(self, topic: str, path: str, key: str, exc: BaseException) -> None:
        """Undo what a failed publish leaves behind, so the caller's retry can succeed."""
        if isinstance(exc, api.NotFound):
            self._admin.forget_topic(topic)
        if key:
            # A failed keyed publish pauses its key (to keep order); the caller retries in order, so resume it.
            # RuntimeError/ValueError: not paused (the publish only timed out and is still in flight).
            with contextlib.suppress(RuntimeError, ValueError):
                self._publisher.resume_publish(path, key)

    async def subscribe(
        self, topic: str, subscription: str, handler: MessageHandler, **options: Any
    ) -> PubSubSubscription:
        """Pull ``subscription`` (created on ``topic`` with ``options`` if absent) into ``handler``."""
        if self._closed:
            raise PublishError("the event bus is closed", topic=topic)
        chosen = self.defaults.with_overrides(options)
        if chosen.max_delivery_attempts and not 5 <= chosen.max_delivery_attempts <= 100:
            raise ConfigurationError("Pub/Sub accepts max_delivery_attempts of 5 to 100 (or 0: no dead-lettering)")
        path = await self._admin.ensure_subscription(
            check_name("topic", topic), check_name("subscription", subscription), chosen
        )
        flow_control = pubsub_v1.types.FlowControl(
            max_messages=chosen.flow_control_max_messages, max_bytes=chosen.flow_control_max_bytes
        )
        running = PubSubSubscription(self._subscriber, path, subscription, handler, chosen, flow_control)
        running.start()
        self._subscriptions.add(running)
        return running

    async def close(self) -> None:
        """Stop every subscription of this bus (gracefully), send what is batched, release the clients."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(subscription.stop() for subscription in self._subscriptions))
        self._subscriptions.clear()
        # A daemon thread, not asyncio.to_thread: a publisher still retrying a keyed message against a broker
        # that is gone never returns from stop(), and the default executor's thread would hold up the exit.
        released = self._loop_future()
        threading.Thread(target=self._release_clients, args=(released,), daemon=True).start()
        try:
            async with asyncio.timeout(self.settings.publish_timeout):
                await released
        except TimeoutError:
            logger.warning("the Pub/Sub publisher did not flush its batches within publish_timeout")

    @staticmethod
    def _loop_future() -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()

    def _release_clients(self, released: asyncio.Future[None]) -> None:
        try:
            self._publisher.stop()
            self._publisher.transport.close()
            self._subscriber.close()
        finally:
            loop = released.get_loop()
            # RuntimeError: the loop closed meanwhile; nobody waits any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, released)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
