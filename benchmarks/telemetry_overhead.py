"""What tracing and metrics cost the Allocate command: the allocation workload with telemetry on versus off.

Both sides are ``bus.handle(Allocate(...))`` through the allocation example's
container, each on its own keel engine over the same database, interleaved
round by round (alternating which goes first). With telemetry on:

* the bus has :class:`keel.telemetry.TelemetryMiddleware` (a span, a duration
  and a counter per command),
* every unit of work has :class:`keel.telemetry.CommitTelemetry` first (a
  ``keel.uow.commit`` span and a duration per commit),
* and, in a third variant, the engine is instrumented too (a span per SQL
  statement, opentelemetry-instrumentation-sqlalchemy's own cost),

all recorded on the OpenTelemetry SDK: a ``TracerProvider`` whose
``BatchSpanProcessor`` hands spans to an exporter that drops them (the cost
of building and queueing every span, without a collector's network time) and
a ``MeterProvider`` whose reader is collected once per round. Target:
telemetry on >= 0.9x the throughput of telemetry off.

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
from collections.abc import Sequence
from typing import Any

from dependency_injector import providers
from examples.allocation.domain.commands import Allocate
from examples.allocation.handlers import allocate
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
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


class DroppingExporter(SpanExporter):
    """Takes every batch and drops it: the SDK's work without a collector."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


async def run(url: str, rounds: int, ops: int) -> tuple[dict[str, list[tuple[float, float]]], int]:
    await ensure_database(url)
    plain, traced, sql = keel_engine(url), keel_engine(url), keel_engine(url)
    exporter = DroppingExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry = configure_telemetry(TelemetrySettings(), tracer_provider, meter_provider)
    instrument_engine(sql)
    try:
        await prepare(plain)
        off, on, with_sql = container_for(plain), container_for(traced), container_for(sql)
        for container in (on, with_sql):
            container.first_commit_participants.override(providers.Object([CommitTelemetry()]))
        async with running(off), running(on), running(with_sql):
            variants: dict[str, Operation] = {
                OFF: through_bus(MessageBus(off.unit_of_work, command_handlers={Allocate: allocate})),
                ON: through_bus(
                    MessageBus(
                        on.unit_of_work, command_handlers={Allocate: allocate}, middleware=[TelemetryMiddleware()]
                    )
                ),
                SQL: through_bus(
                    MessageBus(
                        with_sql.unit_of_work,
                        command_handlers={Allocate: allocate},
                        middleware=[TelemetryMiddleware()],
                    )
                ),
            }
            counter = 0
            for operation in variants.values():  # warm up pools, caches, the statement cache
                await timed(operation, counter, max(ops // 5, 20))
                counter += ops
            await clear(plain)
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
            for round_ in range(rounds):
                names = list(variants)
                for name in names[round_ % 3 :] + names[: round_ % 3]:  # each goes first in turn
                    results[name].append(await timed(variants[name], counter, ops))
                    counter += ops
                    await clear(plain)
                reader.get_metrics_data()  # what a periodic reader would do, untimed
        tracer_provider.force_flush()
        return results, exporter.spans
    finally:
        telemetry.shutdown()
        tracer_provider.shutdown()
        meter_provider.shutdown()
        await plain.dispose()
        await traced.dispose()
        await sql.dispose()


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
