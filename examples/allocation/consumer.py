"""``python -m examples.allocation.consumer``: ``change_batch_quantity`` messages into ``ChangeBatchQuantity``.

Cosmic Python's ``redis_eventconsumer`` on keel: it subscribes to topic
``change_batch_quantity`` (creating its subscription at start, so run it
before anything publishes there), turns each message into a
``ChangeBatchQuantity`` command for the example's message bus, and runs until
SIGTERM or SIGINT, when it stops taking messages, lets the ones in hand
finish (and be acknowledged) and exits 0. Settings are keel's:
``KEEL_DATABASE__URL``, ``KEEL_EVENT_BUS__BACKEND=pubsub``,
``KEEL_EVENT_BUS__PROJECT_ID`` and ``PUBSUB_EMULATOR_HOST`` (see docs/outbox.md).

Messages go through an :class:`keel.outbox.IdempotentConsumer` (the inbox),
and the command is handled with the message's inbox key as its idempotency
key: the command's work commits together with that key in its own unit of
work, so a message redelivered after the work committed (the consumer died
before acknowledging it, or before its inbox row committed) is refused by
the bus and acknowledged, never applied twice; the inbox row makes a
duplicate delivered at the same time wait for the first, then skip. The
inbox row's transaction stays open while the command's commits, so the
consumer needs a database with row locks: PostgreSQL (SQLite has one writer
at a time, and the consumer refuses it).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable

from examples.allocation.container import AllocationContainer
from examples.allocation.messages import CHANGE_BATCH_QUANTITY, change_batch_quantity_command
from examples.allocation.unit_of_work import AllocationUnitOfWork
from keel import CommandAlreadyHandledError, ConfigurationError, MessageBus
from keel.config import KeelSettings
from keel.container import running
from keel.domain.ports import IncomingMessage
from keel.outbox import IdempotentConsumer, message_key

#: The consumer's name in ``keel_inbox`` and its subscription on ``change_batch_quantity``.
CONSUMER = "allocation-change-batch-quantity"

_logger = logging.getLogger("examples.allocation.consumer")


def change_batch_quantity_consumer(
    bus: MessageBus, uow_factory: Callable[[], AllocationUnitOfWork]
) -> IdempotentConsumer[AllocationUnitOfWork]:
    """The inbox-wrapped handler of ``change_batch_quantity`` messages, sending commands to ``bus``."""

    async def handle(message: IncomingMessage, uow: AllocationUnitOfWork) -> None:
        command = change_batch_quantity_command(message)
        try:
            await bus.handle(command, idempotency_key=message_key(message))
        except CommandAlreadyHandledError:
            _logger.info("change_batch_quantity %s was applied already", message.message_id)

    return IdempotentConsumer(CONSUMER, handle, uow_factory)


def messages_in_hand(settings: KeelSettings) -> int:
    """How many messages to handle at once: each holds two connections (its inbox row's and its command's)."""
    return max(1, min(settings.event_bus.flow_control_max_messages, settings.database.max_connections // 2))


async def consume(container: AllocationContainer, stop: asyncio.Event) -> None:
    """Consume until ``stop`` is set, then drain what is in hand."""
    async with running(container):
        if container.engine().dialect.name == "sqlite":
            raise ConfigurationError(
                "the change_batch_quantity consumer needs PostgreSQL (KEEL_DATABASE__URL): on SQLite its inbox "
                "row would hold the only write lock while its command waits for it",
                variables=["KEEL_DATABASE__URL"],
            )
        consumer = change_batch_quantity_consumer(container.bus(), container.unit_of_work)
        subscription = await container.event_bus().subscribe(
            CHANGE_BATCH_QUANTITY, CONSUMER, consumer, flow_control_max_messages=messages_in_hand(container.settings())
        )
        _logger.info("consuming %r as subscription %r", CHANGE_BATCH_QUANTITY, CONSUMER)
        try:
            await stop.wait()
        finally:
            await subscription.stop()  # no new messages; the ones in hand finish and are acknowledged
    _logger.info("stopped")


async def main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    await consume(AllocationContainer(), stop)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    asyncio.run(main())
