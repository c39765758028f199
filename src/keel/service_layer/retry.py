"""How the message bus retries a handler: attempts, exponential backoff, jitter.

The service layer imports only the domain, so the policy names the exception
types to retry instead of asking the infrastructure which errors are
transient. The default retries :class:`keel.ConcurrencyError` (another
writer won the race: reload and try again); the container adds
:class:`keel.DatabaseUnavailableError` (a dropped connection) from settings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity import wait_exponential as _wait_exponential
from tenacity import wait_random as _wait_random

from keel.domain.errors import ConcurrencyError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry a handler on ``retry_on`` errors, ``max_attempts`` times in all.

    The wait before attempt ``n + 1`` is ``min(initial_backoff * 2**(n-1),
    max_backoff)`` plus a random ``[0, jitter]`` seconds, so competing
    writers that conflicted once do not collide again in lockstep. Each
    attempt gets a fresh unit of work.
    """

    max_attempts: int = 10
    initial_backoff: float = 0.01
    max_backoff: float = 1.0
    jitter: float = 0.05
    retry_on: tuple[type[BaseException], ...] = field(default=(ConcurrencyError,))

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, not {self.max_attempts}")
        if min(self.initial_backoff, self.max_backoff, self.jitter) < 0:
            raise ValueError("backoff and jitter must be >= 0")

    @classmethod
    def never(cls) -> RetryPolicy:
        """One attempt, no retry."""
        return cls(max_attempts=1)

    def retries(self, exc: BaseException) -> bool:
        """Whether ``exc`` is worth another attempt under this policy."""
        return isinstance(exc, self.retry_on)

    def retrying(self, before_sleep: Callable[[RetryCallState], Awaitable[None] | None] | None = None) -> AsyncRetrying:
        """A fresh tenacity controller for one message (it holds per-call state)."""
        kwargs: dict[str, Any] = {}
        if before_sleep is not None:
            kwargs["before_sleep"] = before_sleep
        return AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=_wait_exponential(multiplier=self.initial_backoff, max=self.max_backoff)
            + _wait_random(0, self.jitter),
            retry=retry_if_exception_type(self.retry_on),
            reraise=True,
            **kwargs,
        )


def describe_retry(state: RetryCallState) -> tuple[BaseException | None, float]:
    """The error that failed the last attempt and the wait before the next."""
    exc = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    return exc, wait
