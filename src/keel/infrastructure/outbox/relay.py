"""``OutboxRelay``: moves committed outbox rows to the event bus.

Each batch runs in one transaction: claim (see :mod:`._claims`), publish
(the rows of one ordering key one after another, different keys at the same
time), then mark the published rows and schedule the failed ones for a retry
with exponential backoff, parking a row after ``max_attempts``. If the relay
dies mid-batch, its transaction rolls back and its row locks go with it: the
rows are claimed again (delivery is at least once; consumers deduplicate on
the ``event_id`` attribute).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keel.config import OutboxSettings
from keel.cross_cutting.telemetry import continue_trace, metrics, span
from keel.domain.messages import utcnow
from keel.domain.ports import EventBus, OutgoingMessage
from keel.infrastructure.outbox import _claims
from keel.infrastructure.outbox._claims import OutboxRow
from keel.infrastructure.outbox._wakeup import NotifyListener
from keel.infrastructure.outbox.admin import outbox_status, purge
from keel.infrastructure.outbox.tables import PARKED, PENDING

_logger = logging.getLogger("keel.outbox")
_MAX_ERROR = 2000


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one batch did."""

    claimed: int = 0
    published: int = 0
    failed: int = 0
    parked: int = 0


class OutboxRelay:
    """Publishes outbox rows to ``bus``, in order per ordering key; several may run side by side.

    ``settings`` defaults to ``KEEL_OUTBOX__*`` (:class:`keel.config.OutboxSettings`);
    ``clock`` (timezone-aware UTC ``now``) is for tests. :meth:`run` loops until
    :meth:`request_stop`; :meth:`process_batch` runs one batch.
    """

    def __init__(
        self,
        bus: EventBus,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        settings: OutboxSettings | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.bus = bus
        self.session_factory = session_factory
        self.settings = settings or OutboxSettings()
        self.clock = clock
        self._stopping = False
        self._wake = asyncio.Event()

    # --- running ---------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop after the batch in hand (safe to call from a signal handler)."""
        self._stopping = True
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def run(self) -> None:
        """Publish batches until :meth:`request_stop`: at once while full batches come, else on NOTIFY or poll."""
        settings = self.settings
        listener = self._listener()
        next_cleanup = time.monotonic()
        try:
            while not self._stopping:
                if listener is not None:
                    await listener.ensure()
                self._wake.clear()
                try:
                    result = await self.process_batch()
                except Exception:
                    _logger.exception("outbox relay: a batch failed; retrying after the poll interval")
                    result = BatchResult()
                if time.monotonic() >= next_cleanup and not self._stopping:
                    next_cleanup = time.monotonic() + settings.cleanup_interval
                    await self._cleanup_logged()
                if result.claimed >= settings.batch_size and not result.failed:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=settings.poll_interval)
        finally:
            if listener is not None:
                await listener.close()

    async def run_until_signalled(self) -> None:
        """:meth:`run`, stopping after the batch in hand on SIGTERM or SIGINT."""
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        for number in signals:
            loop.add_signal_handler(number, self.request_stop)
        try:
            await self.run()
        finally:
            for number in signals:
                loop.remove_signal_handler(number)

    def _listener(self) -> NotifyListener | None:
        engine = self.session_factory.kw.get("bind")
        if not self.settings.listen or not isinstance(engine, AsyncEngine) or engine.dialect.name != "postgresql":
            return None
        return NotifyListener(engine, self.settings.channel, self._wake)

    async def _cleanup_logged(self) -> None:
        try:
            await self.cleanup()
            await self.record_backlog()
        except Exception:
            _logger.exception("outbox relay: cleanup failed")

    async def record_backlog(self) -> None:
        """Set the ``keel.outbox.backlog`` and ``keel.outbox.oldest_age`` gauges (at every cleanup; two queries)."""
        status = await outbox_status(self.session_factory, limit=0, now=self.clock())
        recorded = metrics()
        recorded.outbox_backlog.set(status.pending)
        recorded.outbox_oldest_age.set(status.oldest_pending_age or 0.0)

    # --- one batch --------------------------------------------------------------------

    async def process_batch(self) -> BatchResult:
        """Claim one batch, publish it, record the outcome; what it did.

        The batch is a ``keel.outbox.relay_batch`` span; each message is
        published in the trace of the request that wrote it (its stored
        ``traceparent``), not the relay's, so that trace reaches the consumer.
        """
        with span(
            "keel.outbox.relay_batch", attributes={"keel.outbox.batch_limit": self.settings.batch_size}
        ) as current:
            result = await self._process_batch()
            if current is not None:
                current.set_attributes(
                    {
                        "keel.outbox.batch_size": result.claimed,
                        "keel.outbox.published": result.published,
                        "keel.outbox.failed": result.failed,
                    }
                )
            return result

    async def _process_batch(self) -> BatchResult:
        async with self.session_factory() as session:
            if session.get_bind().dialect.name == "postgresql":
                # Row locks held while publishing: a relay that dies releases them with its connection.
                async with session.begin():
                    rows = await _claims.claim(session, self.clock(), self.settings.batch_size)
                    if not rows:
                        return BatchResult()
                    return await self._settle(session, rows, await self._publish(rows))
            async with session.begin():
                now = self.clock()
                rows = await _claims.claim(session, now, self.settings.batch_size)
                lease_end = now + timedelta(seconds=self.settings.claim_timeout)
                await _claims.lease(session, [row.id for row in rows], lease_end)
            if not rows:
                return BatchResult()
            errors = await self._publish(rows)
            async with session.begin():
                return await self._settle(session, rows, errors)

    async def _publish(self, rows: Sequence[OutboxRow]) -> dict[str, str | None]:
        """Publish ``rows``; id -> None (published) or the error. Unattempted rows are absent."""
        outcome: dict[str, str | None] = {}
        chains: dict[str, list[OutboxRow]] = {}
        singles: list[list[OutboxRow]] = []
        for row in rows:
            if row.ordering_key is None:
                singles.append([row])
            else:
                chains.setdefault(row.ordering_key, []).append(row)

        async def publish_chain(chain: list[OutboxRow]) -> None:
            for row in chain:
                try:
                    with continue_trace(row.attributes):
                        await self.bus.publish(_message(row))
                except Exception as exc:  # noqa: BLE001 -- any failure of the bus is this message's failure
                    outcome[row.id] = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]
                    metrics().outbox_relay_failures.add(1, {"topic": row.topic})
                    return  # its successors wait for it
                outcome[row.id] = None
                metrics().outbox_relayed.add(1, {"topic": row.topic})

        await asyncio.gather(*(publish_chain(chain) for chain in [*chains.values(), *singles]))
        return outcome

    async def _settle(
        self, session: AsyncSession, rows: Sequence[OutboxRow], errors: dict[str, str | None]
    ) -> BatchResult:
        now = self.clock()
        settings = self.settings
        published = [row.id for row in rows if row.id in errors and errors[row.id] is None]
        failures: list[dict[str, Any]] = []
        parked = 0
        for row in rows:
            error = errors.get(row.id)
            if error is None:
                continue
            attempts = row.attempts + 1
            park = attempts >= settings.max_attempts
            parked += park
            failures.append(
                {
                    "b_id": row.id,
                    "b_attempts": attempts,
                    "b_status": PARKED if park else PENDING,
                    "b_available_at": now if park else now + timedelta(seconds=self.backoff(attempts)),
                    "b_last_error": error,
                }
            )
            log = _logger.error if park else _logger.warning
            log(
                "outbox message %s to %r failed (attempt %d%s): %s",
                row.id,
                row.topic,
                attempts,
                ", parked" if park else "",
                error,
            )
        await _claims.release(session, [row.id for row in rows if row.id not in errors], now)
        await _claims.mark_published(session, published, now, delete_rows=settings.delete_published)
        await _claims.mark_failed(session, failures)
        return BatchResult(claimed=len(rows), published=len(published), failed=len(failures), parked=parked)

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` failed ones: doubling, capped, plus jitter."""
        settings = self.settings
        wait = min(settings.backoff_initial * 2 ** (attempts - 1), settings.backoff_max)
        return float(wait + random.uniform(0, settings.jitter))

    async def cleanup(self) -> tuple[int, int]:
        """Delete published rows and inbox rows past their retention; (outbox rows, inbox rows) deleted."""
        return await purge(self.session_factory, self.settings, now=self.clock())


def _message(row: OutboxRow) -> OutgoingMessage:
    return OutgoingMessage(
        topic=row.topic,
        data=row.payload.encode("utf-8"),
        message_id=row.id,
        attributes=dict(row.attributes),
        ordering_key=row.ordering_key,
    )
