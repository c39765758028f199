"""What tracing and metrics cost the Allocate command: the allocation workload with telemetry on versus off.

Every variant is ``bus.handle(Allocate(...))`` through the allocation example's
container, each on its own keel engine over the same database. In each round
the variants take turns every five commands (each going first in turn), so
the load of a shared machine falls on all of them alike. With telemetry on:

* the bus has :class:`keel.telemetry.TelemetryMiddleware` (a span, a duration
  and a counter per command),
* every unit of work has :class:`keel.telemetry.CommitTelemetry` first (a
  ``keel.uow.commit`` span and a duration per commit),
* and, in a third variant, the engine is instrumented too (a span per SQL
  statement, from :func:`keel.telemetry.instrument_engine`),

all recorded on the OpenTelemetry SDK as a production service would, minus
the network: a ``TracerProvider`` whose ``BatchSpanProcessor`` hands spans to
an exporter that drops them (the cost of building and queueing every span)
and a ``MeterProvider`` whose ``PeriodicExportingMetricReader`` collects and
exports (to an exporter that drops them) every second, in its own thread,
within the timed run. Target: telemetry on >= 0.9x the throughput of
telemetry off. ``SIDES`` and ``run_side`` serve ``benchmarks.instructions``.

    python -m benchmarks.telemetry_overhead            # PostgreSQL, database keel_test on 127.0.0.1
    python -m benchmarks.telemetry_overhead --quick    # a short smoke run

``KEEL_BENCH_DATABASE_URL`` points it elsewhere; the database is created if absent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from dependency_injector import providers
from examples.allocation.container import AllocationContainer
from examples.allocation.domain.commands import Allocate
from examples.allocation.handlers import allocate
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from sqlalchemy.engine import make_url

from benchmarks.bus_overhead import DEFAULT_URL, Operation, clear, container_for, prepare, through_bus, timed
from benchmarks.uow_overhead import ensure_database, keel_engine
from keel import MessageBus
from keel.config import TelemetrySettings
from keel.container import running
from keel.telemetry import CommitTelemetry, TelemetryMiddleware, configure_telemetry, instrument_engine

OFF, ON, SQL = "telemetry off", "keel spans+metrics", "+ SQL spans"
SIDES = (OFF, ON, SQL)
#: Operations a variant runs before the next one takes its turn.
BLOCK = 5


class DroppingExporter(SpanExporter):
    """Takes every batch and drops it: the SDK's work without a collector."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


class DroppingMetricExporter(MetricExporter):
    """Takes every collection and drops it: the periodic reader's work without a collector."""

    def __init__(self) -> None:
        super().__init__()
        self.exports = 0

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        self.exports += 1
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Nothing to close."""


class Providers:
    """What a production service configures, minus the network: a batch span processor, a periodic metric reader."""

    def __init__(self) -> None:
        self.spans = DroppingExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(BatchSpanProcessor(self.spans))
        self.metrics = DroppingMetricExporter()
        # Every second rather than KEEL_TELEMETRY__METRICS_INTERVAL's 60: the collections fall inside the run.
        reader = PeriodicExportingMetricReader(self.metrics, export_interval_millis=1000)
        self.meter_provider = MeterProvider(metric_readers=[reader])
        self.telemetry = configure_telemetry(TelemetrySettings(), self.tracer_provider, self.meter_provider)

    def shutdown(self) -> None:
        self.telemetry.shutdown()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def bus_for(container: AllocationContainer, *, telemetry: bool) -> MessageBus:
    """The benchmark's bus: ``Allocate`` only, with the telemetry middleware if asked."""
    middleware = [TelemetryMiddleware()] if telemetry else []
    return MessageBus(container.unit_of_work, command_handlers={Allocate: allocate}, middleware=middleware)


async def interleaved(variants: dict[str, Operation], start: int, ops: int) -> dict[str, tuple[float, float]]:
    """(operations per second, CPU ms per operation) of each variant over ``ops`` operations, run in turns.

    The variants take turns every :data:`BLOCK` operations (each going first
    in turn), so a change of load on the shared machine (a neighbour's test
    suite starting) falls on all of them alike rather than on whichever ran
    during it: the ratios of one round then mean something.
    """
    wall = dict.fromkeys(variants, 0.0)
    cpu = dict.fromkeys(variants, 0.0)
    names = list(variants)
    counter = start
    for turn in range(ops // BLOCK):
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            operation = variants[name]
            began, began_cpu = time.perf_counter(), time.process_time()
            for n in range(counter, counter + BLOCK):
                await operation(n)
            wall[name] += time.perf_counter() - began
            cpu[name] += time.process_time() - began_cpu
            counter += BLOCK
    done = (ops // BLOCK) * BLOCK
    return {name: (done / wall[name], cpu[name] * 1000 / done) for name in names}


async def run(url: str, rounds: int, ops: int) -> tuple[dict[str, list[tuple[float, float]]], int]:
    await ensure_database(url)
    plain, traced, sql = keel_engine(url), keel_engine(url), keel_engine(url)
    telemetry = Providers()
    instrument_engine(sql)
    try:
        await prepare(plain)
        off, on, with_sql = container_for(plain), container_for(traced), container_for(sql)
        for container in (on, with_sql):
            container.first_commit_participants.override(providers.Object([CommitTelemetry()]))
        async with running(off), running(on), running(with_sql):
            variants: dict[str, Operation] = {
                OFF: through_bus(bus_for(off, telemetry=False)),
                ON: through_bus(bus_for(on, telemetry=True)),
                SQL: through_bus(bus_for(with_sql, telemetry=True)),
            }
            counter = 0
            for operation in variants.values():  # warm up pools, caches, the statement cache
                await timed(operation, counter, max(ops // 5, 20))
                counter += ops
            await clear(plain)
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
            for _ in range(rounds):
                for name, result in (await interleaved(variants, counter, ops)).items():
                    results[name].append(result)
                counter += len(variants) * ops
                await clear(plain)
        telemetry.tracer_provider.force_flush()
        return results, telemetry.spans.spans
    finally:
        telemetry.shutdown()
        await plain.dispose()
        await traced.dispose()
        await sql.dispose()


async def run_side(url: str, side: str, warmup: int, ops: int) -> None:
    """Run ``warmup`` then ``ops`` commands of one variant alone (for ``benchmarks.instructions``)."""
    await ensure_database(url)
    engine = keel_engine(url)
    telemetry = Providers()
    if side == SQL:
        instrument_engine(engine)
    try:
        await prepare(engine)
        container = container_for(engine)
        if side != OFF:
            container.first_commit_participants.override(providers.Object([CommitTelemetry()]))
        async with running(container):
            operation = through_bus(bus_for(container, telemetry=side != OFF))
            await timed(operation, 0, warmup)
            await timed(operation, warmup, ops)
        telemetry.tracer_provider.force_flush()
    finally:
        telemetry.shutdown()
        await engine.dispose()


def report(
    url: str, results: dict[str, list[tuple[float, float]]], spans: int, rounds: int, ops: int
) -> dict[str, float]:
    """Print the table; return the median per-round throughput ratio of each variant to telemetry off."""
    shown = make_url(url).render_as_string(hide_password=True)
    print(f"telemetry_overhead: Allocate through the bus; {rounds} interleaved rounds x {ops} ops on {shown}")
    print(f"  {'variant':<22}{'median ops/s':>14}{'min':>8}{'max':>8}{'CPU ms/op':>11}")
    for name, values in results.items():
        rates = [rate for rate, _ in values]
        cpu = statistics.median(c for _, c in values)
        print(f"  {name:<22}{statistics.median(rates):>14.0f}{min(rates):>8.0f}{max(rates):>8.0f}{cpu:>11.3f}")
    ratios: dict[str, float] = {}
    for name in (ON, SQL):
        pairs = list(zip(results[name], results[OFF], strict=True))
        per_round = sorted(on[0] / off[0] for on, off in pairs)
        cpu_ratio = statistics.median(off[1] / on[1] for on, off in pairs)
        ratios[name] = statistics.median(per_round)
        spread = f"middle half {per_round[len(per_round) // 4]:.3f}..{per_round[(3 * len(per_round)) // 4]:.3f}"
        print(
            f"  {name} / off = {ratios[name]:.3f}x throughput (median of per-round ratios, {spread}; "
            f"target >= 0.90x), {cpu_ratio:.3f}x by CPU time per op"
        )
    print(f"  {spans} spans exported")
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--ops", type=int, default=None, help="operations per round and variant")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 20)
    ops = args.ops or (40 if args.quick else 100)
    url = os.environ.get("KEEL_BENCH_DATABASE_URL", DEFAULT_URL)
    results: Any
    results, spans = asyncio.run(run(url, rounds, ops))
    report(url, results, spans, rounds, ops)
    return 0


if __name__ == "__main__":
    sys.exit(main())
