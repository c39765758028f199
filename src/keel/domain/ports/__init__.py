"""The ports: what the domain and the service layer need from the outside, as Protocols.

Implementations live in the infrastructure (``SqlAlchemyRepository``) and in
``keel.testing`` (``InMemoryRepository``); both satisfy :class:`Repository`,
which the typed API test checks. The event bus, cache and secret-provider
ports are here too; the event store's joins with its issue.

A unit of work builds the repositories declared on it through
:class:`UnitOfWorkRepository`: any class with a ``for_unit_of_work``
classmethod can be declared as a unit-of-work attribute, so a new kind of
repository (an event-sourced one, say) plugs in without the unit of work
knowing about it.

.. versionadded:: 0.2
"""

from __future__ import annotations

from keel.domain.ports._cache import Cache, CacheEntry
from keel.domain.ports._event_bus import EventBus, IncomingMessage, MessageHandler, OutgoingMessage, Subscription
from keel.domain.ports._event_store import EventStore as EventStore
from keel.domain.ports._repository import Repository, UnitOfWorkRepository, builds_from_unit_of_work
from keel.domain.ports._secrets import SecretProvider

__all__ = [
    "Cache",
    "CacheEntry",
    "EventBus",
    "IncomingMessage",
    "MessageHandler",
    "OutgoingMessage",
    "Repository",
    "SecretProvider",
    "Subscription",
    "UnitOfWorkRepository",
    "builds_from_unit_of_work",
]
