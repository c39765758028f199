"""The deployment shape of docs/scaling.md, every role at once: nothing lost, nothing applied twice.

One migrated PostgreSQL database and a project of its own on the Pub/Sub
emulator; on them, as real processes on loopback:

- the allocation API under ``uvicorn --workers 3`` (a supervisor and three workers on one port);
- two ``python -m keel outbox relay`` processes (``Allocated`` -> topic ``line_allocated``);
- two ``python -m examples.allocation.consumer`` processes on the one subscription of ``change_batch_quantity``;
- two ``python -m keel events run`` projection workers.

The allocation example has no event store, so the projection workers run the
bank example's balance projection (``examples.bank_account.projection``) while
the test appends bank events in process: two services' roles sharing one
database, as a test convenience (in production each service has its own).

The load runs concurrently: HTTP allocations through the API workers (a new
connection per request, so any worker answers), ``change_batch_quantity``
messages published while orders are still coming (some published twice with
the same ``event_id``, the message identity the inbox keys on), and bank
deposits. Then, polling with a deadline, until everything has settled:

- every unit of stock is allocated once: each batch holds exactly its final
  size (never more), no order is allocated twice, and the read model
  ``allocations_view`` holds exactly those allocations with their batches;
- the outbox drained: every row published, none parked; each row arrived on a
  test subscription of ``line_allocated`` (Pub/Sub is at-least-once: the
  message identity deduplicates, the duplicates are counted), and the last
  message of each allocated order names the batch it holds;
- each distinct ``change_batch_quantity`` message was applied once: one inbox
  row and one processed-command record per message identity, whatever the
  number of copies;
- the balance projection's checkpoint reached the head, and its read model
  equals a clean replay and the deposits made;
- every process stops on SIGTERM with its clean exit code.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from examples.allocation.consumer import CONSUMER
from examples.allocation.domain.commands import ChangeBatchQuantity
from examples.allocation.messages import CHANGE_BATCH_QUANTITY, LINE_ALLOCATED
from examples.bank_account.domain import Deposit, OpenAccount
from examples.bank_account.handlers import BankUnitOfWork, build_bus
from examples.bank_account.projection import PROJECTIONS, BalanceProjection
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from keel.config import DatabaseSettings
from keel.event_store import ProjectionRunner
from keel.infrastructure.database import create_engine, create_session_factory
from tests.examples.allocation.e2e.processes import (
    Service,
    migrated_database,
    new_project,
    publish_json,
    pubsub_clients,
    pull_json,
    service_environment,
    start_api,
    start_consumer,
    start_projection_worker,
    start_relay,
    stop_all,
    subscribe_to,
    subscription_exists,
)
from tests.support.polling import eventually
from tests.support.services import pubsub_emulator_host

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.pubsub]

API_WORKERS = 3
CLIENTS = 12
SKUS = 4
BATCHES = (6, 6)  # two batches per sku: 12 units of stock each
ORDERS_PER_SKU = 14  # more orders than stock: every batch ends full, some orders find none
RESIZED = (3, 4)  # change_batch_quantity shrinks each batch to this while orders come
DUPLICATED_BATCH = 0  # the messages resizing each sku's first batch are published twice, same identity
ACCOUNTS = 6
DEPOSITS = 8  # per account, each of (account number + 1) * (deposit number + 1)
START_TIMEOUT = 150.0  # ten Python processes importing at once, on a machine shared with others
SETTLE_TIMEOUT = 45.0
BALANCES = BalanceProjection.name

#: Every role's pool kept small: the shared server has 100 connections for everyone's tests.
POOLS = {"KEEL_DATABASE__POOL_SIZE": "1", "KEEL_DATABASE__MAX_CONNECTIONS": "3"}


@dataclass
class Shape:
    """The processes, the Pub/Sub clients and the names the checks need."""

    database_url: str
    services: list[Service]
    api: Service
    publisher: Any
    subscriber: Any
    project: str
    line_allocated: str


@dataclass
class Load:
    """What the test sent: the resize messages by identity, how many copies of them, the deposits by account."""

    resizes: dict[str, tuple[str, int]]  # event_id -> (batch reference, new quantity)
    copies: int
    orders: dict[str, str]  # order id -> sku
    deposits: dict[str, list[int]]  # account id -> amounts
    statuses: Counter[int]


@pytest.fixture
def shape(tmp_path: Path) -> Iterator[Shape]:
    """Every process of the shape, started together, ready; whatever the test left running is stopped at the end."""
    emulator = pubsub_emulator_host()
    project = new_project()
    with migrated_database() as url, pubsub_clients(emulator) as (publisher, subscriber):
        line_allocated = subscribe_to(publisher, subscriber, project, LINE_ALLOCATED)
        env = service_environment(
            url,
            emulator,
            project,
            **POOLS,
            KEEL_EVENT_STORE__PROJECTIONS="examples.bank_account.projection:PROJECTIONS",
            KEEL_EVENT_STORE__PROJECTION_POLL_INTERVAL="1",
            KEEL_EVENT_STORE__PROJECTION_CLAIM_INTERVAL="0.2",
        )
        # A consumer holds two connections per message in hand (its inbox row's and its command's).
        consumer_env = {**env, "KEEL_DATABASE__MAX_CONNECTIONS": "4"}
        consumer_subscription = subscription_exists(subscriber, project, CONSUMER)
        services = [
            start_api(env, tmp_path, API_WORKERS, wait=False),
            start_relay(env, tmp_path, "relay-1"),
            start_relay(env, tmp_path, "relay-2"),
            start_consumer(consumer_env, tmp_path, consumer_subscription, "consumer-1", wait=False),
            start_consumer(consumer_env, tmp_path, consumer_subscription, "consumer-2", wait=False),
            start_projection_worker(env, tmp_path, "projections-1", wait=False),
            start_projection_worker(env, tmp_path, "projections-2", wait=False),
        ]
        try:
            began = time.monotonic()
            for service in services:  # they start in parallel: one deadline for all
                service.wait_ready(timeout=max(START_TIMEOUT - (time.monotonic() - began), 1.0))
            print(f"every process ready in {time.monotonic() - began:.1f} s")
            yield Shape(url, services, services[0], publisher, subscriber, project, line_allocated)
        finally:
            for service in services:
                if not service.stopped:
                    service.terminate()
            for service in services:
                if not service.stopped:
                    with suppress(AssertionError):  # the test has failed already, or fails on what it saw
                        service.stop()


def test_every_role_with_two_processes_loses_nothing_and_applies_nothing_twice(shape: Shape) -> None:
    """API x3, relay x2, consumer x2, projection worker x2 under concurrent load: exactly-once results."""
    began = time.monotonic()
    load = asyncio.run(drive(shape))
    assert load.statuses == Counter({202: len(load.orders)}), load.statuses
    driven = time.monotonic()
    received = asyncio.run(settle(shape, load))
    settled = time.monotonic()

    codes = stop_all(shape.services)
    print(f"load {driven - began:.1f} s, settled {settled - driven:.1f} s at {time.strftime('%H:%M:%S')}, stopped in")
    print({service.name: round(service.stop_seconds or 0, 1) for service in shape.services})
    assert codes == {service.name: 0 for service in shape.services}, {
        s.name: s.output()[-2000:] for s in shape.services if codes[s.name] != 0
    }
    assert shape.api.output().count("Application shutdown complete") == API_WORKERS

    asyncio.run(check(shape, load, received))


# --- the load ------------------------------------------------------------------------


async def drive(shape: Shape) -> Load:
    """Orders over HTTP, resize messages and bank deposits, all at once; what was sent."""
    suffix = uuid.uuid4().hex[:6]
    skus = [f"sku-{n}-{suffix}" for n in range(SKUS)]
    orders = {f"order-{n:03}-{suffix}": skus[n % SKUS] for n in range(ORDERS_PER_SKU * SKUS)}
    resizes = {str(uuid.uuid4()): (batch_ref(sku, number), qty) for sku in skus for number, qty in enumerate(RESIZED)}
    deposits = {f"acc-{a}-{suffix}": [(a + 1) * (d + 1) for d in range(DEPOSITS)] for a in range(ACCOUNTS)}
    statuses: Counter[int] = Counter()
    half_answered = asyncio.Event()

    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=0)  # a new connection: any worker
    async with httpx.AsyncClient(base_url=shape.api.url or "", limits=limits, timeout=60) as api:
        for sku in skus:
            for number, qty in enumerate(BATCHES):
                batch = {"ref": batch_ref(sku, number), "sku": sku, "qty": qty, "eta": None}
                assert (await api.post("/add_batch", json=batch)).status_code == 201
        gate = asyncio.Semaphore(CLIENTS)

        async def order(orderid: str, sku: str) -> None:
            async with gate:
                response = await api.post("/allocate", json={"orderid": orderid, "sku": sku, "qty": 1})
            statuses[response.status_code] += 1
            if sum(statuses.values()) >= len(orders) // 2:
                half_answered.set()

        async def resize() -> int:
            """Every resize once (the first batch's twice), published while the second half of the orders comes."""
            await half_answered.wait()
            copies = 0
            for event_id, (ref, qty) in resizes.items():
                times = 2 if ref.endswith(f"-{DUPLICATED_BATCH}") else 1
                for _ in range(times):
                    body, attributes = {"batchref": ref, "qty": qty}, {"event_id": event_id}
                    await asyncio.to_thread(
                        publish_json, shape.publisher, shape.project, CHANGE_BATCH_QUANTITY, body, attributes
                    )
                    copies += 1
            return copies

        engine = checking_engine(shape.database_url)
        try:
            bank = build_bus(lambda: BankUnitOfWork(create_session_factory(engine)))

            async def account(account_id: str, amounts: list[int]) -> None:
                await bank.handle(OpenAccount(account_id=account_id, owner=account_id, overdraft_limit=0))
                for amount in amounts:
                    await bank.handle(Deposit(account_id=account_id, amount=amount))

            results = await asyncio.gather(
                resize(),
                *(order(orderid, sku) for orderid, sku in orders.items()),
                *(account(account_id, amounts) for account_id, amounts in deposits.items()),
            )
        finally:
            await engine.dispose()
    copies = results[0]
    assert isinstance(copies, int)
    return Load(resizes, copies, orders, deposits, statuses)


def batch_ref(sku: str, number: int) -> str:
    return f"{sku}-batch-{number}"


def checking_engine(url: str) -> AsyncEngine:
    return create_engine(DatabaseSettings(url=url, pool_size=2, max_connections=8))


# --- settling ------------------------------------------------------------------------


async def settle(shape: Shape, load: Load) -> dict[str, list[dict[str, Any]]]:
    """Poll until every role has done its part (the outbox drained, every message in, the projection at the head).

    Returns the ``line_allocated`` bodies received, by message identity (``event_id``), copies included.
    """
    received: dict[str, list[dict[str, Any]]] = {}
    engine = checking_engine(shape.database_url)
    try:

        async def scalar(sql: str, **params: Any) -> int:
            for service in shape.services:
                service.check_running()
            async with engine.connect() as conn:
                return int((await conn.execute(text(sql), params)).scalar_one())

        async def outbox_drained() -> bool:
            return await scalar("SELECT count(*) FROM keel_outbox WHERE status <> 'published'") == 0

        async def resizes_applied() -> bool:
            inbox = "SELECT count(*) FROM keel_inbox WHERE consumer = :consumer"
            return await scalar(inbox, consumer=CONSUMER) == len(load.resizes)

        async def projection_at_head() -> bool:
            [status] = await ProjectionRunner(create_session_factory(engine), PROJECTIONS).status()
            return status.head > 0 and status.lag == 0

        async def every_row_received() -> bool:
            for body, attributes in await asyncio.to_thread(pull_json, shape.subscriber, shape.line_allocated):
                received.setdefault(attributes["event_id"], []).append(body)
            published = await outbox_ids(engine)
            return set(received) >= published

        started = time.monotonic()
        for condition in (resizes_applied, outbox_drained, projection_at_head, every_row_received):
            left = SETTLE_TIMEOUT - (time.monotonic() - started)
            try:
                await eventually(condition, timeout=max(left, 1.0), interval=0.1)
            except TimeoutError:
                logs = {s.name: s.output()[-1500:] for s in shape.services}
                raise AssertionError(f"{condition.__name__}: not within {SETTLE_TIMEOUT} s\n{logs}") from None
    finally:
        await engine.dispose()
    return received


async def outbox_ids(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.execute(text("SELECT id FROM keel_outbox"))).scalars())


# --- the checks ----------------------------------------------------------------------


async def check(shape: Shape, load: Load, received: dict[str, list[dict[str, Any]]]) -> None:
    """The state every role left once they all stopped."""
    engine = checking_engine(shape.database_url)
    try:
        async with engine.connect() as conn:
            await check_allocations(conn, load)
            await check_outbox(conn, received)
            await check_change_messages(conn, load)
        await check_projection(engine, load)
    finally:
        await engine.dispose()


async def check_allocations(conn: Any, load: Load) -> None:
    """Each batch holds exactly its final size (more orders than stock, so none has room left); no order twice."""
    sizes = {
        str(ref): (int(qty), int(allocated))
        for ref, qty, allocated in await conn.execute(
            text(
                "SELECT b.reference, b.purchased_quantity, count(a.id) FROM batches b "
                "LEFT JOIN allocations a ON a.batch_id = b.id GROUP BY b.reference, b.purchased_quantity"
            )
        )
    }
    resized = dict(load.resizes.values())
    assert {ref: qty for ref, (qty, _) in sizes.items()} == resized, "each batch has the size its message gave it"
    assert {ref: allocated for ref, (_, allocated) in sizes.items()} == resized, "each batch is full, never over"
    per_order = Counter(
        str(orderid)
        for (orderid,) in await conn.execute(
            text("SELECT l.orderid FROM allocations a JOIN order_lines l ON l.id = a.orderline_id")
        )
    )
    assert max(per_order.values()) == 1, "no order is allocated twice"
    assert set(per_order) <= set(load.orders)
    assert sum(per_order.values()) == sum(resized.values())
    # The read model, written after the commits by handlers in several processes in no set order,
    # says what the write model holds (examples/allocation/handlers.py, follow_allocation).
    truth = {
        (str(orderid), str(sku), str(ref))
        for orderid, sku, ref in await conn.execute(
            text(
                "SELECT l.orderid, l.sku, b.reference FROM allocations a JOIN order_lines l ON l.id = a.orderline_id "
                "JOIN batches b ON b.id = a.batch_id"
            )
        )
    }
    view = {
        (str(o), str(s), str(r))
        for o, s, r in await conn.execute(text("SELECT orderid, sku, batchref FROM allocations_view"))
    }
    assert view == truth, "allocations_view holds exactly the allocations, each with its batch"


async def check_outbox(conn: Any, received: dict[str, list[dict[str, Any]]]) -> None:
    """Every row published, none parked, each received; the last message of an allocated order names its batch."""
    rows = (await conn.execute(text("SELECT id, status, payload FROM keel_outbox ORDER BY position"))).all()
    assert Counter(str(row.status) for row in rows) == Counter({"published": len(rows)})
    assert set(received) == {str(row.id) for row in rows}, "every Allocated event arrived on line_allocated"
    last: dict[str, str] = {}
    for row in rows:  # in position order: one sku's rows commit in this order (its product's version serialises them)
        body = json.loads(row.payload)
        last[body["orderid"]] = body["batchref"]
        assert all(copy == body for copy in received[str(row.id)])
    held = {
        str(orderid): str(ref)
        for orderid, ref in await conn.execute(
            text(
                "SELECT l.orderid, b.reference FROM allocations a "
                "JOIN order_lines l ON l.id = a.orderline_id JOIN batches b ON b.id = a.batch_id"
            )
        )
    }
    assert {orderid: last[orderid] for orderid in held} == held, "subscribers last heard where each order is"
    duplicates = sum(len(copies) - 1 for copies in received.values())
    print(f"line_allocated: {len(rows)} messages, {duplicates} delivered more than once")


async def check_change_messages(conn: Any, load: Load) -> None:
    """One inbox row and one processed ChangeBatchQuantity per message identity, whatever the copies."""
    keys = list(load.resizes)
    inbox = await conn.execute(
        text("SELECT message_key FROM keel_inbox WHERE consumer = :consumer"), {"consumer": CONSUMER}
    )
    assert sorted(str(key) for (key,) in inbox) == sorted(keys)
    processed = await conn.execute(
        text("SELECT command_id, command_type FROM keel_processed_commands WHERE command_id = ANY(:keys)"),
        {"keys": keys},
    )
    assert sorted((str(key), str(kind)) for key, kind in processed) == sorted(
        (key, ChangeBatchQuantity.message_type) for key in keys
    )
    assert load.copies > len(keys), "some messages were published twice"


async def check_projection(engine: AsyncEngine, load: Load) -> None:
    """The workers' balances are the deposits made, and what a clean replay gives; the checkpoint at the head."""
    balances = "SELECT account_id, owner, balance, movements, position FROM bank_balances ORDER BY account_id"
    async with engine.connect() as conn:
        followed = [tuple(row) for row in await conn.execute(text(balances))]
    factory = create_session_factory(engine)
    runner = ProjectionRunner(factory, PROJECTIONS)
    [status] = await runner.status()
    assert status.lag == 0
    assert status.position == status.head
    assert {row[0]: (row[2], row[3]) for row in followed} == {
        account_id: (sum(amounts), len(amounts)) for account_id, amounts in load.deposits.items()
    }
    await runner.replay(BALANCES)
    async with engine.connect() as conn:
        clean = [tuple(row) for row in await conn.execute(text(balances))]
    assert followed == clean
