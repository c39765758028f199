"""``CacheSettings``: the ``KEEL_CACHE__*`` section of :class:`keel.config.KeelSettings`."""

from __future__ import annotations

from typing import Literal

import pydantic
from pydantic import BaseModel, Field, SecretStr


class CacheSettings(BaseModel):
    """Which cache the container builds, and how it behaves."""

    model_config = pydantic.ConfigDict(extra="forbid")

    backend: Literal["memory", "redis", "none"] = Field(
        "memory",
        description="`memory` (per process: one process only), `redis` (shared), or `none` (no cache at all).",
    )
    url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"), description="Redis URL for the `redis` backend (may hold a password)."
    )
    namespace: str = Field("keel", min_length=1, description="Prefix of every key, so applications can share a Redis.")
    default_ttl: float = Field(300.0, gt=0, description="Seconds a value lives when its writer gives no TTL.")
    timeout: float = Field(
        0.25, gt=0, description="Seconds allowed to connect, to wait for a pooled connection and for each reply."
    )
    max_connections: int = Field(50, ge=1, description="Connections in the Redis pool.")
    max_entries: int = Field(10_000, ge=1, description="Values the `memory` backend keeps (least recently used go).")
    lease: float = Field(
        10.0,
        gt=0,
        description="Seconds a committing writer holds its keys (fills refused); a dead writer's hold lapses then.",
    )
    breaker_threshold: int = Field(3, ge=1, description="Consecutive Redis failures that open the circuit breaker.")
    breaker_reset: float = Field(5.0, gt=0, description="Seconds the breaker stays open before one trial call.")
