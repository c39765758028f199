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

import builtins
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, Self, TypeVar

from pydantic import SecretStr

from keel.domain.messages import DomainEvent
from keel.domain.pages import CursorPage, Page
from keel.domain.streams import ANY, ExpectedVersion, RecordedEvent, Snapshot

T = TypeVar("T")


class Repository(Protocol[T]):
    """The repository surface of DESIGN.md, over aggregates of type ``T``.

    ``where`` conditions and ``order_by`` keys are whatever the
    implementation takes (SQLAlchemy expressions and keel filters for the
    SQL repository and its twin), so they are typed loosely here.
    """

    def add(self, entity: T) -> T:
        """Add a new entity; it is stored on commit."""
        ...

    def add_many(self, entities: Iterable[T]) -> builtins.list[T]:
        """Add many new entities."""
        ...

    async def get(
        self,
        id: Any,
        *,
        include_deleted: bool = False,
        load: Sequence[Any] = (),
        for_update: bool = False,
        nowait: bool = False,
        skip_locked: bool = False,
    ) -> T:
        """The entity with this key; ``NotFoundError`` if absent.

        ``load``: loader options for this call; ``for_update`` (``nowait``,
        ``skip_locked``): lock the row until the transaction ends, where the
        backend has row locks.
        """
        ...

    async def get_or_none(
        self,
        id: Any,
        *,
        include_deleted: bool = False,
        load: Sequence[Any] = (),
        for_update: bool = False,
        nowait: bool = False,
        skip_locked: bool = False,
    ) -> T | None:
        """The entity with this key, or None."""
        ...

    async def get_many(
        self, ids: Iterable[Any], *, include_deleted: bool = False, load: Sequence[Any] = ()
    ) -> builtins.list[T]:
        """The entities with these keys, in the order asked; missing ones skipped."""
        ...

    async def get_or_create(self, defaults: Mapping[str, Any] | None = None, **keys: Any) -> tuple[T, bool]:
        """The live entity matching ``keys``, else a new one from ``keys`` and ``defaults``; and whether it is new.

        Safe under concurrency: racing callers get one entity and no error.
        """
        ...

    async def upsert(self, entity: T, conflict: Sequence[str] | None = None) -> T:
        """Insert ``entity``'s row, or update the row it conflicts with on ``conflict`` (default: the key)."""
        ...

    async def list(
        self,
        *where: Any,
        order_by: Any = None,
        limit: int | None = None,
        offset: int | None = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        load: Sequence[Any] = (),
        **equals: Any,
    ) -> builtins.list[T]:
        """Entities matching every condition."""
        ...

    async def list_and_count(
        self,
        *where: Any,
        order_by: Any = None,
        limit: int | None = None,
        offset: int | None = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        load: Sequence[Any] = (),
        **equals: Any,
    ) -> tuple[builtins.list[T], int]:
        """The entities of ``list`` and how many match in all (limit and offset aside)."""
        ...

    async def count(self, *where: Any, include_deleted: bool = False, only_deleted: bool = False, **equals: Any) -> int:
        """How many entities match."""
        ...

    async def exists(
        self, *where: Any, include_deleted: bool = False, only_deleted: bool = False, **equals: Any
    ) -> bool:
        """Whether any entity matches."""
        ...

    async def paginate(
        self,
        *where: Any,
        page: int = 1,
        size: int | None = None,
        order_by: Any = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        load: Sequence[Any] = (),
        **equals: Any,
    ) -> Page[T]:
        """One offset page."""
        ...

    async def paginate_by_cursor(
        self,
        *where: Any,
        cursor: str | None = None,
        size: int | None = None,
        order_by: Any = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
        **equals: Any,
    ) -> CursorPage[T]:
        """One keyset page."""
        ...

    async def delete(self, entity: T) -> None:
        """Soft-delete when the model supports it, else delete for good."""
        ...

    async def restore(self, entity: T) -> T:
        """Undo a soft delete."""
        ...

    async def hard_delete(self, entity: T) -> None:
        """Delete for good."""
        ...


class UnitOfWorkRepository(Protocol):
    """A repository class a unit of work can build for itself.

    ``uow`` is the open unit of work (its session, workspace or store is
    the implementation's business); ``model`` is the type argument of the
    declaration (``products: SqlAlchemyRepository[Product]``), or None when
    the class names its model itself.
    """

    @classmethod
    def for_unit_of_work(cls, uow: Any, model: type[Any] | None = None) -> Self:
        """A repository bound to ``uow``'s transaction, reporting what it hands out as seen."""
        ...


def builds_from_unit_of_work(candidate: object) -> bool:
    """Whether ``candidate`` is a class a unit of work can declare (see :class:`UnitOfWorkRepository`)."""
    return isinstance(candidate, type) and callable(getattr(candidate, "for_unit_of_work", None))


# --- the event bus ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message for a topic: the body as bytes (keel writes JSON) and string attributes.

    ``message_id`` is keel's id for the message (an event's ``event_id``),
    also sent as the ``event_id`` attribute so consumers can deduplicate.
    """

    topic: str
    data: bytes
    message_id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    #: Messages with the same key are delivered in publish order (where the subscription asks for it).
    ordering_key: str | None = None


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A message delivered to a subscription's handler."""

    data: bytes
    attributes: Mapping[str, str]
    #: The broker's id for this message (Pub/Sub's ``message_id``).
    message_id: str
    subscription: str
    ordering_key: str | None = None
    #: How many times the broker has delivered it (1 on the first delivery), when the broker says.
    delivery_attempt: int | None = None
    publish_time: datetime | None = None


#: Handles one delivered message; returning acknowledges it, raising makes the broker redeliver it.
MessageHandler = Callable[[IncomingMessage], Awaitable[None]]


class Subscription(Protocol):
    """A running subscription: messages go to its handler until it is stopped."""

    async def stop(self) -> None:
        """Stop pulling, let the messages in hand finish (acked or nacked), then return."""
        ...


class EventBus(Protocol):
    """Publishes messages to topics and runs handlers for subscriptions.

    Implementations: ``keel.event_bus.InMemoryEventBus`` and
    ``keel.event_bus.PubSubEventBus``. Topics and subscriptions are created on
    first use.
    """

    async def publish(self, message: OutgoingMessage) -> str:
        """Publish one message; return the broker's message id. ``PublishError`` when the broker refuses."""
        ...

    async def subscribe(self, topic: str, subscription: str, handler: MessageHandler, **options: Any) -> Subscription:
        """Run ``handler`` for every message of ``subscription`` (created on ``topic`` if absent)."""
        ...

    async def close(self) -> None:
        """Release the bus's clients; publishing afterwards is an error."""
        ...


class SecretProvider(Protocol):
    """Where secrets come from: the environment, files (``/run/secrets``), a secret manager.

    Synchronous on purpose: settings are read synchronously, once, at start-up.
    Implementations: ``keel.security.EnvironmentSecretProvider``,
    ``FileSecretProvider`` and ``GoogleSecretManagerProvider``.
    """

    def get(self, name: str) -> SecretStr | None:
        """The secret called ``name``, or ``None`` when the provider holds none by that name.

        A store that cannot be read raises :class:`keel.SecretUnavailableError`.
        """


# --- the cache ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """What :meth:`Cache.lookup` found: the value (on a hit) and the stamp a later fill must present.

    The stamp is opaque: the generations of the lookup's guards (and of the
    whole cache) when it read them. A fill made with it is refused if any of
    them moved since, so a reader cannot put back a value older than a write
    that finished during its read.
    """

    hit: bool
    value: Any
    stamp: str


class Cache(Protocol):
    """A shared cache of JSON values with TTLs, and race-free cache-aside on top of it.

    Values are JSON-compatible (``dict``, ``list``, ``str``, numbers, booleans,
    ``None``) or pydantic models (stored as their JSON dump); what comes back is
    always a fresh copy. Keys live in the cache's namespace. An unavailable
    backend never raises: reads miss, writes are dropped, and the failure is
    logged and counted (``stats``). Implementations: ``keel.cache.RedisCache``
    and ``keel.cache.InMemoryCache``.

    Cache-aside that cannot serve stale data works with *guards*, names of
    what a value depends on (an entity, a model's lists): :meth:`lookup`
    returns a stamp of the guards' generations, :meth:`fill` stores only if
    that stamp is still current and no writer holds a guard, and a writer
    brackets its commit with :meth:`begin_invalidation` (before) and
    :meth:`end_invalidation` (after). See docs/cache.md for the argument.
    """

    async def get(self, key: str) -> Any:
        """The value under ``key``, or None when absent or expired."""
        ...

    async def set(self, key: str, value: Any, *, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (None: the cache's default TTL)."""
        ...

    async def delete(self, *keys: str) -> None:
        """Drop these keys."""
        ...

    async def clear(self) -> None:
        """Drop every value of the namespace."""
        ...

    async def lookup(self, key: str, guards: Sequence[str] = ()) -> CacheEntry:
        """The value under ``key`` if it was stored with the guards' current generations."""
        ...

    async def fill(
        self, key: str, value: Any, entry: CacheEntry, guards: Sequence[str] = (), *, ttl: float | None = None
    ) -> bool:
        """Store ``value`` if ``entry``'s stamp is still current and no writer holds a guard; whether it did."""
        ...

    async def begin_invalidation(self, guards: Sequence[str]) -> str:
        """A writer is about to commit changes behind ``guards``: hold them (fills refused); returns a token."""
        ...

    async def end_invalidation(self, guards: Sequence[str], token: str) -> None:
        """The writer committed (or gave up): release its hold and move the guards' generations on."""
        ...

    async def close(self) -> None:
        """Release the cache's connections."""


# --- the event store ----------------------------------------------------------------------


class EventStore(Protocol):
    """Append-only streams of domain events with a global order.

    Its public path is ``keel.event_store.EventStore``, beside the
    implementation and the types it speaks.

    Implementation: ``keel.event_store.SqlAlchemyEventStore`` (PostgreSQL and
    SQLite). See docs/event-store.md for the guarantees.
    """

    async def append(
        self,
        stream_id: str,
        events: Sequence[DomainEvent],
        *,
        expected_version: ExpectedVersion = ANY,
        metadata: Mapping[str, Any] | None = None,
    ) -> builtins.list[RecordedEvent]:
        """Record ``events`` at the end of ``stream_id``; ``ConcurrencyError`` if the stream is not as expected.

        Idempotent: appending events whose ids are already recorded at the
        same place returns those records without writing.
        """
        ...

    async def append_many(
        self,
        appends: Iterable[tuple[str, Sequence[DomainEvent], ExpectedVersion]],
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> builtins.list[RecordedEvent]:
        """Append to many streams in one transaction: all of them or none."""
        ...

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> builtins.list[RecordedEvent]:
        """The stream's events between the versions (inclusive), oldest first unless ``backwards``."""
        ...

    async def read_all(
        self, *, after: int = 0, limit: int | None = None, types: Iterable[str | type[DomainEvent]] | None = None
    ) -> builtins.list[RecordedEvent]:
        """Events after global ``position``, in order, never skipping one a writer commits later."""
        ...

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 when it has no events)."""
        ...

    async def save_snapshot(
        self, stream_id: str, version: int, state: Mapping[str, Any], *, schema_version: int = 1
    ) -> None:
        """Keep ``state`` as the stream's snapshot at ``version`` (replacing an older one)."""
        ...

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The stream's latest snapshot, or None."""
        ...


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
