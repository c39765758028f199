"""``IdempotentConsumer``: a message handler that applies each message once.

It runs the handler in a fresh unit of work and records ``(consumer,
message key)`` in ``keel_inbox`` in the same transaction, before the
handler's work: a redelivered or duplicated message finds the row and is
skipped (so the broker's delivery is acknowledged), and two deliveries of one
message running at once are serialised by the row's primary key (the second
waits for the first's commit, then skips; if the first rolls back, the second
applies it). The key is the ``event_id`` attribute (the outbox's message id),
else the broker's message id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from keel.cross_cutting.error import ConfigurationError
from keel.cross_cutting.security import Principal, as_principal
from keel.cross_cutting.telemetry import span
from keel.domain.messages import utcnow
from keel.domain.ports import IncomingMessage
from keel.infrastructure.message_metadata import CORRELATION_ID, PRINCIPAL
from keel.infrastructure.outbox.tables import inbox
from keel.infrastructure.outbox.writer import EVENT_ID
from keel.infrastructure.unit_of_work import SqlAlchemyUnitOfWork
from keel.service_layer.context import message_context

U = TypeVar("U", bound=SqlAlchemyUnitOfWork)
#: What an idempotent consumer runs: the message and an open unit of work (the consumer commits it).
InboxHandler = Callable[[IncomingMessage, U], Awaitable[None]]
_KEY_LENGTH = 200


class IdempotentConsumer(Generic[U]):
    """Turns ``handler(message, uow)`` into a :data:`keel.domain.ports.MessageHandler` that applies each message once.

    ``name`` identifies the consumer in ``keel_inbox`` (two consumers of one
    message each apply it once). ``uow_factory()`` returns a fresh unit of
    work (the container's ``unit_of_work``); the handler receives it open and
    should not commit it: the consumer commits after the handler returns.
    The handler runs in the message's correlation (the ``correlation_id``
    attribute), caused by its ``event_id``, and as the principal carried in
    the ``principal`` attribute, else ``principal`` given here.
    """

    def __init__(
        self,
        name: str,
        handler: InboxHandler[U],
        uow_factory: Callable[[], U],
        *,
        principal: Principal | None = None,
    ) -> None:
        if not name or len(name) > 200:
            raise ConfigurationError("a consumer needs a name of 1 to 200 characters", consumer=name)
        self.name = name
        self.handler = handler
        self.uow_factory = uow_factory
        self.principal = principal

    async def __call__(self, message: IncomingMessage) -> None:
        """Apply ``message`` unless this consumer already has; raising makes the broker redeliver it."""
        attributes = message.attributes
        event_id = attributes.get(EVENT_ID)
        carried = attributes.get(PRINCIPAL)
        principal = Principal.model_validate_json(carried) if carried else self.principal
        with (
            message_context(correlation_id=attributes.get(CORRELATION_ID), causation_id=event_id or message.message_id),
            as_principal(principal),
            # A child of the bus's CONSUMER span (the producer's trace): the handler's spans nest under it.
            span("keel.inbox.apply", attributes={"keel.consumer": self.name, "keel.event_id": event_id}) as current,
        ):
            applied = await self.apply(message, message_key(message))
            if current is not None:
                current.set_attribute("keel.inbox.duplicate", not applied)

    async def apply(self, message: IncomingMessage, key: str) -> bool:
        """Run the handler for ``message`` under ``key`` unless recorded; whether it ran."""
        uow = self.uow_factory()
        async with uow:
            session = uow.session
            values = {"consumer": self.name, "message_key": key, "processed_at": utcnow()}
            statement = _insert(session.get_bind().dialect.name)
            if not await session.run_sync(_execute, statement, values):
                return False
            await self.handler(message, uow)
            await uow.commit()
        return True


def message_key(message: IncomingMessage) -> str:
    """The inbox key of ``message``: its ``event_id`` attribute, else the broker's id (hashed when too long)."""
    key = message.attributes.get(EVENT_ID) or message.message_id
    if len(key) > _KEY_LENGTH:
        return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
    return key


_STATEMENTS: dict[str, Insert] = {}


def _insert(dialect: str) -> Insert:
    cached = _STATEMENTS.get(dialect)
    if cached is not None:
        return cached
    # ON CONFLICT DO NOTHING: a duplicate leaves the transaction usable (PostgreSQL
    # aborts it on an error), and a concurrent first delivery is waited for.
    key = [inbox.c.consumer, inbox.c.message_key]
    if dialect == "postgresql":
        statement: Insert = postgresql.insert(inbox).on_conflict_do_nothing(index_elements=key)
    elif dialect == "sqlite":
        statement = sqlite.insert(inbox).on_conflict_do_nothing(index_elements=key)
    else:
        raise ConfigurationError(f"the inbox is not supported on {dialect!r}", dialect=dialect)
    _STATEMENTS[dialect] = statement
    return statement


def _execute(session: Session, statement: Insert, values: dict[str, Any]) -> bool:
    return session.connection().execute(statement, values).rowcount == 1
