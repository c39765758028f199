"""Wait for a condition with a deadline (polling, for state another process or task changes)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], Awaitable[object] | object], timeout: float = 30.0, interval: float = 0.02
) -> None:
    """Return once ``check()`` is true; ``TimeoutError`` after ``timeout`` seconds."""
    give_up = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > give_up:
            raise TimeoutError(f"still false after {timeout} s")
        await asyncio.sleep(interval)
