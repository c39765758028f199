"""Topics and subscriptions created on first use, idempotently.

Within one bus, concurrent first uses of a name share one creation (a task per
name); across processes, ``AlreadyExists`` means another creator won, which
is success. The blocking admin calls run in a worker thread, never on the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from google.api_core import exceptions as api
from google.pubsub_v1 import types as pubsub_types

from keel.cross_cutting.error import InfrastructureError, PublishError
from keel.infrastructure.event_bus._options import SubscriptionOptions
from keel.infrastructure.event_bus._pubsub_errors import bounded_retry, publish_error, subscription_error


class PubSubAdmin:
    """Creates what a bus publishes to and pulls from, once per name per bus."""

    def __init__(self, publisher: Any, subscriber: Any, project_id: str, timeout: float) -> None:
        self._publisher = publisher
        self._subscriber = subscriber
        self.project_id = project_id
        self._timeout = timeout
        self._topics: dict[str, asyncio.Task[str]] = {}
        self._subscriptions: dict[str, asyncio.Task[str]] = {}

    def topic_path(self, topic: str) -> str:
        return f"projects/{self.project_id}/topics/{topic}"

    def subscription_path(self, subscription: str) -> str:
        return f"projects/{self.project_id}/subscriptions/{subscription}"

    async def ensure_topic(self, topic: str) -> str:
        """The topic's path, after creating it if this bus has not seen it yet."""
        return await _once(self._topics, topic, lambda: self._create_topic(topic))

    def forget_topic(self, topic: str) -> None:
        """Create ``topic`` again on next use (the broker said it does not exist)."""
        self._topics.pop(topic, None)

    async def _create_topic(self, topic: str) -> str:
        path = self.topic_path(topic)
        try:
            await asyncio.to_thread(
                self._publisher.create_topic, name=path, retry=bounded_retry(self._timeout), timeout=self._timeout
            )
        except api.AlreadyExists:
            pass
        except Exception as exc:
            raise publish_error(exc, topic=topic) from exc
        return path

    async def ensure_subscription(self, topic: str, subscription: str, options: SubscriptionOptions) -> str:
        """The subscription's path, after creating it (and its dead-letter topic) if this bus has not yet."""
        return await _once(
            self._subscriptions, subscription, lambda: self._create_subscription(topic, subscription, options)
        )

    async def _create_subscription(self, topic: str, subscription: str, options: SubscriptionOptions) -> str:
        try:
            topic_path = await self.ensure_topic(topic)
        except PublishError as exc:
            # Not a publish failure to the caller, who asked to subscribe.
            raise InfrastructureError(
                f"could not create topic {topic!r} for subscription {subscription!r}",
                subscription=subscription,
                topic=topic,
                retryable=exc.retryable,
            ) from exc
        request: dict[str, Any] = {
            "name": self.subscription_path(subscription),
            "topic": topic_path,
            "ack_deadline_seconds": options.ack_deadline,
            "enable_message_ordering": options.ordering_enabled,
            "retry_policy": pubsub_types.RetryPolicy(
                minimum_backoff=timedelta(seconds=options.retry_min_backoff),
                maximum_backoff=timedelta(seconds=options.retry_max_backoff),
            ),
        }
        dead_letter = options.dead_letter_name(topic, subscription)
        if dead_letter is not None:
            # The dead-letter topic gets a subscription of its own name: without one, Pub/Sub drops dead letters.
            await self.ensure_subscription(dead_letter, dead_letter, SubscriptionOptions(max_delivery_attempts=0))
            request["dead_letter_policy"] = pubsub_types.DeadLetterPolicy(
                dead_letter_topic=self.topic_path(dead_letter), max_delivery_attempts=options.max_delivery_attempts
            )
        await self._create(subscription, request)
        return str(request["name"])

    async def _create(self, subscription: str, request: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(
                self._subscriber.create_subscription,
                request=request,
                retry=bounded_retry(self._timeout),
                timeout=self._timeout,
            )
        except api.AlreadyExists:
            pass  # another process (or an earlier run) created it: it keeps its own configuration
        except Exception as exc:
            raise subscription_error(exc, subscription=subscription, doing="create") from exc


async def _once(cache: dict[str, asyncio.Task[str]], name: str, create: Callable[[], Awaitable[str]]) -> str:
    """One creation per name, shared by concurrent callers; a failed one is tried again by the next caller."""
    task = cache.get(name)
    if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):

        async def run() -> str:
            return await create()

        task = asyncio.get_running_loop().create_task(run())
        cache[name] = task
    # Shielded: one caller's cancellation must not cancel the creation the others are waiting for.
    return await asyncio.shield(task)
