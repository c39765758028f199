"""The message context: correlation and causation ids, held in context variables.

Every message keel handles or sends belongs to one *correlation* (the first
request or message that started the work) and was *caused* by one message.
Entry points set the correlation for a block with :func:`message_context`
(the FastAPI integration from a request header, a consumer from the incoming
message's ``correlation_id`` attribute); code that writes messages (the
outbox writer, the event store) reads :func:`current_correlation_id` and
:func:`current_causation_id`. Outside any block both are ``None``.

.. versionadded:: 0.2
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_correlation: ContextVar[str | None] = ContextVar("keel_correlation_id", default=None)
_causation: ContextVar[str | None] = ContextVar("keel_causation_id", default=None)


def current_correlation_id() -> str | None:
    """The correlation id of the work this task is doing, or ``None``."""
    return _correlation.get()


def current_causation_id() -> str | None:
    """The id of the message that caused the work this task is doing, or ``None``."""
    return _causation.get()


@contextmanager
def message_context(*, correlation_id: str | None = None, causation_id: str | None = None) -> Iterator[str]:
    """Run a block inside a correlation; yield its id.

    ``correlation_id`` given: the block joins that correlation. Not given:
    the block keeps the enclosing correlation, or starts a new one (a random
    hex id) when there is none. ``causation_id`` is set for the block when
    given and otherwise left as it is.
    """
    correlation = correlation_id or _correlation.get() or uuid.uuid4().hex
    correlation_token = _correlation.set(correlation)
    causation_token = _causation.set(causation_id) if causation_id is not None else None
    try:
        yield correlation
    finally:
        if causation_token is not None:
            _causation.reset(causation_token)
        _correlation.reset(correlation_token)
