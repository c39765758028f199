"""The handlers a subscriber has in hand: counted for flow control, awaited (or cancelled) on stop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


class RunningHandlers:
    """Tasks of one subscriber's handlers on the application's loop."""

    def __init__(self, on_done: Callable[[], object] = lambda: None) -> None:
        #: Called after each handler's task has ended and left the count (a subscriber waiting for room wakes).
        self._on_done = on_done
        self._tasks: set[asyncio.Task[None]] = set()
        #: Bytes of the messages in hand (the in-memory bus's flow control counts them).
        self.bytes = 0

    @property
    def count(self) -> int:
        return len(self._tasks)

    def start(self, handling: Coroutine[Any, Any, None], size: int = 0) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(handling)
        self._tasks.add(task)
        self.bytes += size

        def finished(done: asyncio.Task[None]) -> None:
            self._tasks.discard(done)
            self.bytes -= size
            self._on_done()

        task.add_done_callback(finished)
        return task

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the running handlers; cancel the ones still running."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in late:
            task.cancel()
        # A cancelled handler nacks its message as it unwinds; wait for that, not for the handler's result.
        await asyncio.gather(*late, return_exceptions=True)
