"""A relay in a process of its own, for the kill and stop tests.

    python -m tests.support.relay_process DATABASE_URL OUT_FILE [DELAY] [BATCH]

It runs :class:`keel.outbox.OutboxRelay` until SIGTERM, over a bus that
appends each published message id to ``OUT_FILE`` (one ``write`` per line, so
a line written before a SIGKILL survives it), after ``DELAY`` seconds.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from keel.config import DatabaseSettings, OutboxSettings
from keel.domain.ports import MessageHandler, OutgoingMessage
from keel.infrastructure.database import create_engine, create_session_factory
from keel.outbox import OutboxRelay


class FileBus:
    def __init__(self, path: str, delay: float) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        self.delay = delay

    async def publish(self, message: OutgoingMessage) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        os.write(self.fd, f"{message.message_id}\n".encode())
        return message.message_id

    async def subscribe(self, topic: str, subscription: str, handler: MessageHandler, **options: Any) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        os.close(self.fd)


async def main(url: str, out: str, delay: float, batch: int) -> None:
    engine = create_engine(DatabaseSettings(url=url, pool_size=2, max_connections=4))
    bus = FileBus(out, delay)
    settings = OutboxSettings(batch_size=batch, poll_interval=0.05, backoff_initial=0, jitter=0, claim_timeout=1)
    relay = OutboxRelay(bus, create_session_factory(engine), settings=settings)
    print("ready", flush=True)
    try:
        await relay.run_until_signalled()
    finally:
        await bus.close()
        await engine.dispose()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(args[0], args[1], float(args[2]) if len(args) > 2 else 0.0, int(args[3]) if len(args) > 3 else 50))
