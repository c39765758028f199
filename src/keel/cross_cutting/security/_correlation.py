"""``correlate``: bus middleware that gives every handled message a correlation id.

Entry points normally set one per request (``message_context``); a message
handled outside any, a script's or a test's, gets a fresh one here, so its
audit row, outbox rows and log lines still share an id.
"""

from __future__ import annotations

from typing import Any

from keel.service_layer.context import message_context
from keel.service_layer.middleware import CallNext, HandlerCall


async def correlate(call: HandlerCall, call_next: CallNext) -> Any:
    """Run the call inside the current correlation, or a new one when none is active."""
    with message_context():
        return await call_next()
