"""Running one handler for :class:`keel.service_layer.messagebus.MessageBus`: middleware, retries, events.

A mixin the bus inherits. A handler's attempt runs under the bus's retry
policy (tenacity), except once its unit of work has committed: running it
again would repeat that work, so that error is raised as it is.
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, cast

from tenacity import RetryCallState

from keel.domain.messages import DomainEvent, Message
from keel.service_layer.commands import current_command
from keel.service_layer.injection import PreparedHandler
from keel.service_layer.middleware import CallNext, HandlerCall, Middleware
from keel.service_layer.retry import RetryPolicy, describe_retry
from keel.service_layer.unit_of_work import AbstractUnitOfWork

if TYPE_CHECKING:
    from keel.service_layer.messagebus import BusStats, MessageBus

logger = logging.getLogger("keel.messagebus")


class HandlerRuns:
    """How :class:`MessageBus` runs one handler for one message."""

    _uow_factory: Callable[[], AbstractUnitOfWork]
    _middleware: tuple[Middleware, ...]
    stats: BusStats

    @property
    def _bus(self) -> MessageBus:
        # Only ever mixed into MessageBus, which handlers and middleware are given.
        return cast("MessageBus", self)

    def _dispatch(
        self,
        handler: PreparedHandler,
        message: Message,
        queue: deque[DomainEvent],
        policy: RetryPolicy,
        kind: Literal["command", "event"],
    ) -> Awaitable[Any]:
        if not self._middleware:  # the common case: one test, no extra coroutine
            return self._run(handler, message, queue, policy, kind)
        call = HandlerCall(message, handler.name, kind, handler.handler, self._bus)

        def innermost() -> Awaitable[Any]:
            return self._run(handler, message, queue, policy, kind)

        chain: CallNext = innermost
        for layer in reversed(self._middleware):
            chain = _bind(layer, call, chain)
        return chain()

    async def _run(
        self,
        handler: PreparedHandler,
        message: Message,
        queue: deque[DomainEvent],
        policy: RetryPolicy,
        kind: Literal["command", "event"],
    ) -> Any:
        if policy.max_attempts == 1:
            return await self._call(handler, message, queue)
        # The first attempt runs before tenacity's controller is built: most
        # messages succeed at once, and building it costs more than the bus's
        # other bookkeeping. A failure it would retry is replayed as the
        # controller's first attempt, so waits, logs and attempt numbers are
        # tenacity's own.
        first_failure: Exception | None = None
        committed_error: Exception | None = None
        try:
            return await self._call(handler, message, queue, policy)
        except _AttemptCommitted as stop:
            committed_error = stop.error
        except Exception as exc:
            if not policy.retries(exc):
                raise
            first_failure = exc
        if committed_error is not None:
            # Outside the except block: the error keeps its own context.
            raise self._not_retried(handler, message, committed_error)

        def before_sleep(state: RetryCallState) -> None:
            exc, wait = describe_retry(state)
            if kind == "command":
                self.stats.command_retries += 1
            else:
                self.stats.event_handler_retries += 1
            logger.warning(
                "%s %s failed (%s); retrying in %.3fs (attempt %d of %d)",
                handler.name,
                message.message_type,
                exc,
                wait,
                state.attempt_number + 1,
                policy.max_attempts,
                extra={
                    "keel_handler": handler.name,
                    "keel_message": message.message_type,
                    "keel_attempt": state.attempt_number + 1,
                },
            )

        try:
            async for attempt in policy.retrying(before_sleep):
                with attempt:
                    if first_failure is not None:
                        failure, first_failure = first_failure, None
                        raise failure
                    return await self._call(handler, message, queue, policy)
        except _AttemptCommitted as stop:
            committed_error = stop.error
        if committed_error is None:  # pragma: no cover
            raise AssertionError("unreachable: tenacity re-raises the last error")
        raise self._not_retried(handler, message, committed_error)

    def _not_retried(self, handler: PreparedHandler, message: Message, error: Exception) -> Exception:
        """Log, and return for raising, the error of an attempt whose unit of work committed."""
        # Running the handler again would repeat the work it committed (and its events).
        logger.warning(
            "%s %s failed (%s) after its unit of work committed; not retried",
            handler.name,
            message.message_type,
            error,
            extra={"keel_handler": handler.name, "keel_message": message.message_type},
        )
        return error

    async def _call(
        self,
        handler: PreparedHandler,
        message: Message,
        queue: deque[DomainEvent],
        policy: RetryPolicy | None = None,
    ) -> Any:
        """Run ``handler`` once; its committed events join ``queue``.

        Under a retry ``policy``, an error it would retry that comes after the
        unit of work committed is wrapped in :class:`_AttemptCommitted`, which
        no policy retries.
        """
        kwargs: dict[str, Any] = {}
        uow: AbstractUnitOfWork | None = None
        if handler.wants_uow:
            uow = kwargs["uow"] = self._uow_factory()
        if handler.wants_bus:
            kwargs["bus"] = self._bus
        try:
            result = handler.call(message, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            if policy is not None and policy.retries(exc) and _committed(uow):
                raise _AttemptCommitted(exc) from None
            raise
        else:
            return result
        finally:
            # Only committed work has events to collect, so this is right
            # even when the handler failed after an earlier commit.
            if uow is not None:
                queue.extend(uow.collect_new_events())


class _AttemptCommitted(BaseException):
    """Carries a handler's error out of the retry loop: its unit of work had committed.

    A ``BaseException``, so that no policy's ``retry_on`` matches it; it never
    leaves :meth:`MessageBus._run`.
    """

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


def _bind(layer: Middleware, call: HandlerCall, call_next: CallNext) -> CallNext:
    def run() -> Awaitable[Any]:
        return layer(call, call_next)

    return run


def _committed(uow: AbstractUnitOfWork | None) -> bool:
    """Whether this attempt's work committed: its injected unit of work, or any that recorded the command."""
    if uow is not None and uow.committed:
        return True
    context = current_command()
    return context is not None and context.recorded
