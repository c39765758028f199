"""The ``KEEL_EVENT_BUS__*`` section of :class:`keel.config.KeelSettings`.

Kept in its own module so :mod:`keel.config` only gains one field and one
import for it. The defaults are Pub/Sub's own where Pub/Sub has one (ack
deadline, retry backoff, flow control); the ranges are the ones Pub/Sub
accepts, so a bad value fails at start-up, not at the first subscription.
"""

from __future__ import annotations

import string
from typing import Literal

import pydantic
from pydantic import BaseModel, Field, field_validator, model_validator

#: The placeholders a dead-letter topic name template may use.
DEAD_LETTER_PLACEHOLDERS = frozenset({"topic", "subscription"})


class EventBusSettings(BaseModel):
    """Which event bus keel uses, and how it publishes to and pulls from Pub/Sub.

    ``PUBSUB_EMULATOR_HOST`` (no ``KEEL_`` prefix) is read by google-cloud-pubsub
    itself: when it is set, the clients talk to that emulator without credentials.
    """

    model_config = pydantic.ConfigDict(extra="forbid")

    backend: Literal["memory", "pubsub"] = Field(
        "memory", description="`memory`: in this process only (the embedded default); `pubsub`: Google Cloud Pub/Sub."
    )
    project_id: str | None = Field(
        None, description="The Google Cloud project of the topics and subscriptions; required for `pubsub`."
    )
    publish_batch_max_messages: int = Field(
        100,
        ge=1,
        le=1000,
        description="Messages per publish batch: a batch is sent when full, or after `publish_batch_max_latency`.",
    )
    publish_batch_max_bytes: int = Field(
        1_000_000, ge=1, le=10_000_000, description="Bytes per publish batch (Pub/Sub accepts up to 10 MB per request)."
    )
    publish_batch_max_latency: float = Field(
        0.01, ge=0, description="Seconds a batch waits for more messages before it is sent."
    )
    publish_timeout: float = Field(
        60.0, gt=0, description="Seconds `publish` waits for the broker's answer before raising a retryable error."
    )
    request_timeout: float = Field(30.0, gt=0, description="Seconds allowed for creating a topic or subscription.")
    flow_control_max_messages: int = Field(
        1000, ge=1, description="Messages a subscriber holds at once (handled or waiting); Pub/Sub stops sending above."
    )
    flow_control_max_bytes: int = Field(
        100 * 1024 * 1024, ge=1, description="Bytes of messages a subscriber holds at once."
    )
    ack_deadline: int = Field(
        60,
        ge=10,
        le=600,
        description="Seconds before an unacknowledged message is redelivered (new subscriptions); "
        "the client extends it while a handler runs.",
    )
    retry_min_backoff: float = Field(
        10.0, ge=0, le=600, description="Seconds before the first redelivery of a nacked message (new subscriptions)."
    )
    retry_max_backoff: float = Field(
        600.0, ge=0, le=600, description="Upper bound of the exponential redelivery backoff, in seconds."
    )
    max_delivery_attempts: int = Field(
        5,
        ge=0,
        le=100,
        description="Deliveries before a message moves to the dead-letter topic (new subscriptions); "
        "5 to 100, or 0 for no dead-lettering.",
    )
    dead_letter_topic: str = Field(
        "{subscription}-dead-letter",
        description="Name of a subscription's dead-letter topic; `{subscription}` and `{topic}` are replaced. "
        "A subscription of the same name is created on it, so dead letters are kept.",
    )
    ordering_enabled: bool = Field(
        False,
        description="Publish ordering keys and create subscriptions that deliver each key in order; "
        "when false (Pub/Sub's default), ordering keys are not sent.",
    )
    shutdown_timeout: float = Field(
        30.0, gt=0, description="Seconds a stopping subscriber waits for its running handlers before cancelling them."
    )

    @field_validator("max_delivery_attempts")
    @classmethod
    def _pubsub_range(cls, value: int) -> int:
        if 0 < value < 5:
            raise ValueError("must be 0 (no dead-lettering) or 5 to 100 (the range Pub/Sub accepts)")
        return value

    @field_validator("dead_letter_topic")
    @classmethod
    def _template(cls, value: str) -> str:
        fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        unknown = fields - DEAD_LETTER_PLACEHOLDERS
        if unknown:
            raise ValueError(f"unknown placeholder {sorted(unknown)}; use {{subscription}} and {{topic}}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> EventBusSettings:
        if self.retry_min_backoff > self.retry_max_backoff:
            raise ValueError(
                f"retry_min_backoff ({self.retry_min_backoff}) exceeds retry_max_backoff ({self.retry_max_backoff})"
            )
        if self.backend == "pubsub" and not self.project_id:
            raise ValueError("the pubsub backend needs project_id (KEEL_EVENT_BUS__PROJECT_ID)")
        return self
