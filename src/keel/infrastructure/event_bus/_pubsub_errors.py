"""google-api-core's errors, translated into keel's at the Pub/Sub edge.

Callers see :class:`keel.PublishError` (``retryable`` when the same call may
succeed later) or :class:`keel.InfrastructureError`, never a Google type.
The driver's own message goes to ``diagnostics`` (logs), not to ``details``.
"""

from __future__ import annotations

from google.api_core import exceptions as api
from google.api_core import retry
from google.cloud.pubsub_v1.publisher import exceptions as publisher

from keel.cross_cutting.error import InfrastructureError, PublishError

#: Failures a later attempt can get past: the broker was unreachable, slow, busy or restarting.
_RETRYABLE: tuple[type[BaseException], ...] = (
    api.ServiceUnavailable,
    api.DeadlineExceeded,
    api.InternalServerError,
    api.Unknown,
    api.BadGateway,
    api.TooManyRequests,
    api.Aborted,
    api.Cancelled,
    api.RetryError,
    publisher.PublishError,
    publisher.PublishToPausedOrderingKeyException,
    publisher.FlowControlLimitError,
    TimeoutError,
    ConnectionError,
)

_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (api.NotFound, "it does not exist"),
    (api.PermissionDenied, "permission denied"),
    (api.Unauthenticated, "the credentials were refused"),
    (api.InvalidArgument, "the broker refused the request as invalid"),
    (api.FailedPrecondition, "the broker refused it in its current state"),
    (publisher.MessageTooLargeError, "the message is too large"),
    (publisher.PublishToPausedOrderingKeyException, "its ordering key is paused after an earlier failure"),
    (api.DeadlineExceeded, "the broker did not answer in time"),
    (TimeoutError, "the broker did not answer in time"),
    (api.RetryError, "the broker kept failing until the retry deadline"),
    (api.TooManyRequests, "the broker is over its quota"),
)


def bounded_retry(timeout: float) -> retry.Retry:
    """The client's retry on transient errors, given up after ``timeout`` seconds in all.

    The clients' own defaults retry for up to ten minutes (forever for keyed
    publishes), and their ``timeout`` argument bounds one attempt, not the
    whole: a broker that is down would hold the caller that long.
    """
    return retry.Retry(
        predicate=retry.if_exception_type(
            api.ServiceUnavailable, api.DeadlineExceeded, api.InternalServerError, api.Unknown, api.Aborted
        ),
        initial=0.1,
        maximum=min(2.0, timeout),
        multiplier=2.0,
        timeout=timeout,
    )


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, _RETRYABLE)


def reason(exc: BaseException) -> str:
    for kind, text in _REASONS:
        if isinstance(exc, kind):
            return text
    return "the broker is unavailable" if is_retryable(exc) else "the broker refused it"


def _diagnosed(error: InfrastructureError, exc: BaseException) -> InfrastructureError:
    error.diagnostics = {"exception": type(exc).__name__, "detail": str(exc)[:500]}
    return error


def publish_error(exc: BaseException, *, topic: str, message_id: str | None = None) -> PublishError:
    """``exc`` (raised while publishing to ``topic``) as a :class:`PublishError`."""
    context = {"topic": topic} if message_id is None else {"topic": topic, "message_id": message_id}
    error = PublishError(f"could not publish to topic {topic!r}: {reason(exc)}", retryable=is_retryable(exc), **context)
    _diagnosed(error, exc)
    return error


def subscription_error(exc: BaseException, *, subscription: str, doing: str) -> InfrastructureError:
    """``exc`` (raised while ``doing`` something to ``subscription``) as an :class:`InfrastructureError`."""
    error = InfrastructureError(
        f"could not {doing} subscription {subscription!r}: {reason(exc)}",
        subscription=subscription,
        retryable=is_retryable(exc),
    )
    return _diagnosed(error, exc)
