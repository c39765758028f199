"""Read replicas: which engine a read-only unit of work reads from, and read-your-writes.

A :class:`ReplicaRouter` holds one engine per replica. A read-only unit of
work (``AppUnitOfWork(session_factory, read_only=True)``) asks it for an
engine: the next healthy replica, round-robin, or ``None`` (read from the
primary) when none is healthy. Health is a cheap query under a short timeout,
cached for ``health_interval`` seconds; a connection that fails marks its
replica unhealthy until the next check.

Read your writes: after a commit on the primary, the unit of work records the
primary's WAL position (``pg_current_wal_lsn()``) in a context variable of the
current request or task (:func:`commit_position`). A read-only unit of work
in the same context waits, polling, until its replica has replayed that
position (``pg_last_wal_replay_lsn()``), up to ``read_your_writes_timeout``
seconds, then reads from the primary instead. A web layer that wants the
guarantee across requests carries the position to the next request (a cookie,
a header) and restores it with :func:`read_after`.

The router finds read-only units of work through the session factory:
``create_session_factory(engine, replicas=router)`` puts it in the factory's
``info`` under :data:`REPLICA_ROUTER`. Counters are in :attr:`ReplicaRouter.stats`
(the telemetry integration reads them as OpenTelemetry instruments); lag,
fallbacks and timeouts are also logged on ``keel.replicas``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keel.cross_cutting.error import KeelError

_logger = logging.getLogger("keel.replicas")

#: Key of the router in a session factory's ``info`` (see :func:`router_of`).
REPLICA_ROUTER = "keel.replica_router"

#: Stands for "a commit whose WAL position is unknown": read it from the primary.
PRIMARY_ONLY = "primary"

_POSITION: ContextVar[str | None] = ContextVar("keel_commit_position", default=None)

# Replayed past the position. A server not in recovery is the primary itself (listed among the
# replicas to spread reads over it too), or one promoted since: it has every commit it will see.
_CAUGHT_UP = text(
    "SELECT CASE WHEN pg_is_in_recovery() "
    "THEN pg_last_wal_replay_lsn() >= CAST(CAST(:position AS TEXT) AS pg_lsn) ELSE true END"
)
# Seconds behind the primary: 0 when everything received is replayed (an idle primary is no lag).
_LAG = text(
    "SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END"
)


def commit_position() -> str | None:
    """The WAL position of the last commit in this request/task context (``None``: no commit yet)."""
    return _POSITION.get()


def remember_commit_position(position: str | None) -> None:
    """Record ``position`` (a ``pg_lsn`` text, or :data:`PRIMARY_ONLY`) as this context's last commit."""
    _POSITION.set(position)


@contextmanager
def read_after(position: str | None) -> Iterator[None]:
    """Within the block, read-only units of work see at least the commit at ``position``.

    For a position carried over from an earlier request (see the module docstring).
    """
    token = _POSITION.set(position)
    try:
        yield
    finally:
        _POSITION.reset(token)


@dataclass
class ReplicaStats:
    """Counters of one router; read them for metrics (they only ever grow, except ``lag_seconds``)."""

    #: Read-only units of work that ran on a replica / on the primary.
    replica_reads: int = 0
    primary_reads: int = 0
    #: Reads sent to the primary because no replica was healthy.
    fallbacks: int = 0
    #: Reads that waited for a replica to replay a commit, and those that gave up and used the primary.
    read_your_writes_waits: int = 0
    read_your_writes_timeouts: int = 0
    #: Total seconds spent waiting for replicas to catch up.
    read_your_writes_wait_seconds: float = 0.0
    #: Times a replica was found down (a failed check or connection).
    marked_unhealthy: int = 0
    #: Replication lag per replica (masked URL -> seconds), as of its last health check.
    lag_seconds: dict[str, float] = field(default_factory=dict)


@dataclass(eq=False)
class _Replica:
    engine: AsyncEngine
    name: str
    healthy: bool = True
    checked_at: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ReplicaRouter:
    """Chooses the replica each read-only unit of work reads from; see the module docstring."""

    def __init__(
        self,
        replicas: Sequence[AsyncEngine],
        *,
        read_your_writes_timeout: float = 2.0,
        health_interval: float = 5.0,
        health_timeout: float = 1.0,
        poll_interval: float = 0.002,
    ) -> None:
        self._replicas = [_Replica(engine, engine.url.render_as_string(hide_password=True)) for engine in replicas]
        self.read_your_writes_timeout = read_your_writes_timeout
        self.health_interval = health_interval
        self.health_timeout = health_timeout
        self.poll_interval = poll_interval
        self.stats = ReplicaStats()
        self._turn = itertools.count()

    @property
    def engines(self) -> list[AsyncEngine]:
        """The replicas' engines, in configuration order."""
        return [replica.engine for replica in self._replicas]

    async def dispose(self) -> None:
        """Close every replica engine's pooled connections."""
        for replica in self._replicas:
            await replica.engine.dispose()

    async def engine_for_read(self) -> AsyncEngine | None:
        """The replica engine for the next read-only unit of work, or ``None`` for the primary."""
        position = _POSITION.get()
        if position == PRIMARY_ONLY or (position is not None and self.read_your_writes_timeout <= 0):
            return self._on_primary()
        healthy = await self._healthy()
        if not healthy:
            if self._replicas:
                self.stats.fallbacks += 1
                _logger.info("no healthy replica: reading from the primary")
            return self._on_primary()
        start = next(self._turn) % len(healthy)
        for replica in healthy[start:] + healthy[:start]:
            if position is None:
                return self._on_replica(replica)
            caught_up = await self._wait_for(replica, position)
            if caught_up:
                return self._on_replica(replica)
            if caught_up is False:
                self.stats.read_your_writes_timeouts += 1
                _logger.warning(
                    "replica %s had not replayed %s after %.3f s: reading from the primary",
                    replica.name,
                    position,
                    self.read_your_writes_timeout,
                )
                return self._on_primary()
        self.stats.fallbacks += 1
        _logger.info("no replica answered: reading from the primary")
        return self._on_primary()

    def mark_unhealthy(self, engine: AsyncEngine, reason: object = None) -> None:
        """Count ``engine``'s replica as down until its next health check."""
        for replica in self._replicas:
            if replica.engine is engine or replica.engine.sync_engine is engine.sync_engine:
                self._set_health(replica, healthy=False, reason=reason)

    def _on_replica(self, replica: _Replica) -> AsyncEngine:
        self.stats.replica_reads += 1
        return replica.engine

    def _on_primary(self) -> AsyncEngine | None:
        self.stats.primary_reads += 1
        return None

    async def _healthy(self) -> list[_Replica]:
        now = time.monotonic()
        stale = [replica for replica in self._replicas if now - replica.checked_at >= self.health_interval]
        if stale:
            await asyncio.gather(*(self._check(replica) for replica in stale))
        return [replica for replica in self._replicas if replica.healthy]

    async def _check(self, replica: _Replica) -> None:
        async with replica.lock:
            if time.monotonic() - replica.checked_at < self.health_interval:
                return  # another task checked it while this one waited for the lock
            try:
                async with asyncio.timeout(self.health_timeout):
                    async with replica.engine.connect() as conn:
                        lag = await conn.scalar(_LAG)
            except (SQLAlchemyError, OSError, TimeoutError, KeelError) as exc:
                self._set_health(replica, healthy=False, reason=exc)
            else:
                self._set_health(replica, healthy=True)
                if lag is not None:
                    self.stats.lag_seconds[replica.name] = float(lag)
                    if lag > self.read_your_writes_timeout:
                        _logger.warning("replica %s lags %.3f s behind the primary", replica.name, lag)
            replica.checked_at = time.monotonic()

    def _set_health(self, replica: _Replica, *, healthy: bool, reason: object = None) -> None:
        if replica.healthy and not healthy:
            self.stats.marked_unhealthy += 1
            _logger.warning("replica %s is down (%s): reads go elsewhere", replica.name, _reason(reason))
            replica.checked_at = time.monotonic()
        elif healthy and not replica.healthy:
            _logger.info("replica %s is back", replica.name)
        replica.healthy = healthy

    async def _wait_for(self, replica: _Replica, position: str) -> bool | None:
        """True once ``replica`` replayed ``position``; False on timeout; None when it cannot be asked."""
        started = time.monotonic()
        deadline = started + self.read_your_writes_timeout
        try:
            async with replica.engine.connect() as conn:
                # No BEGIN round trip per poll: the check reads shared memory, not a snapshot.
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                while True:
                    if await conn.scalar(_CAUGHT_UP, {"position": position}):
                        return True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    await asyncio.sleep(min(self.poll_interval, remaining))
        except (SQLAlchemyError, OSError, KeelError) as exc:
            self._set_health(replica, healthy=False, reason=exc)
            return None
        finally:
            waited = time.monotonic() - started
            self.stats.read_your_writes_waits += 1
            self.stats.read_your_writes_wait_seconds += waited


def _reason(reason: object) -> str:
    if reason is None:
        return "unreachable"
    return type(reason).__name__ if isinstance(reason, BaseException) else str(reason)


def router_of(session_factory: async_sessionmaker[AsyncSession]) -> ReplicaRouter | None:
    """The router a session factory carries (see :func:`keel.infrastructure.database.create_session_factory`)."""
    info = session_factory.kw.get("info") or {}
    router = info.get(REPLICA_ROUTER)
    return router if isinstance(router, ReplicaRouter) else None


_READ_ONLY_ATTRIBUTE = "_keel_read_only_engine"


def read_only_engine(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` with PostgreSQL transactions begun ``READ ONLY`` (same pool; the flag is reset on return).

    Kept on the engine itself (a collectable cycle), so it is built once per engine, not per unit of work.
    """
    if engine.dialect.name != "postgresql":
        return engine
    found: AsyncEngine | None = getattr(engine.sync_engine, _READ_ONLY_ATTRIBUTE, None)
    if found is None:
        found = engine.execution_options(postgresql_readonly=True)
        setattr(engine.sync_engine, _READ_ONLY_ATTRIBUTE, found)
    return found
