"""Every benchmark ``python -m benchmarks`` runs: its arguments and the targets the issues set for it.

A target reads one figure from the benchmark's own output (a regular
expression whose group ``v`` is the number), so the benchmarks keep their
measurements and their printed reports exactly as they are; this table is the
one place that says which printed figure answers which target of which issue.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


@dataclass(frozen=True)
class Target:
    """One figure a benchmark prints, and the bound an issue sets on it."""

    what: str
    pattern: str
    op: str
    bound: float
    unit: str
    source: str

    def met(self, value: float) -> bool:
        return _OPS[self.op](value, self.bound)

    @property
    def shown(self) -> str:
        return f"{self.op} {self.bound:g}{self.unit}"


@dataclass(frozen=True)
class Benchmark:
    """A module of ``benchmarks/`` with its standard-run arguments and its targets."""

    name: str
    args: tuple[str, ...] = ()
    targets: tuple[Target, ...] = field(default_factory=tuple)
    #: Other figures worth a row in the table (no target): (what, pattern, unit).
    figures: tuple[tuple[str, str, str], ...] = ()
    #: The module ``python -m benchmarks.<module>`` runs (the name by default) and its smoke-run arguments.
    module: str = ""
    quick_args: tuple[str, ...] = ("--quick",)


def _ratio(label: str) -> str:
    """The figure of a printed line ``<label> = 0.97x``."""
    return rf"^\s*{label} = (?P<v>\d+\.\d+)x"


def _after(heading: str, label: str) -> str:
    """The first ``<label> = 0.97x`` after the line ``<heading>`` (benchmarks that print several pairs)."""
    return rf"^{heading}\n(?:.*\n)*?\s*{label} = (?P<v>\d+\.\d+)x"


_KEEL_HW = r"keel / hand-written"
_BUS = "#8 item 11 (bus_overhead >= 0.95x)"

BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        "uow_overhead",
        ("--rounds", "10", "--ops", "50"),
        (Target("keel / hand-written, load-modify-commit", _ratio(_KEEL_HW), ">=", 1.0, "x", "#8 item 11"),),
    ),
    Benchmark(
        "bus_overhead",
        ("--rounds", "4", "--ops", "30"),
        (
            Target("Allocate via the bus / by hand", _after("allocate", _KEEL_HW), ">=", 0.95, "x", _BUS),
            Target(
                "Allocate, no processed-commands record",
                _after("allocate, no processed-commands record", _KEEL_HW),
                ">=",
                0.95,
                "x",
                _BUS,
            ),
            Target("Allocate + read model", _after(r"allocate \+ read model", _KEEL_HW), ">=", 0.95, "x", _BUS),
        ),
    ),
    Benchmark(
        "pagination",
        ("--rows", "20000", "--repeats", "15"),
        (Target("cursor page at depth / page 1", _ratio("cursor deep / page 1"), "<=", 1.5, "x", "docs (pagination)"),),
    ),
    Benchmark(
        "bulk_insert",
        ("--rounds", "3", "--rows", "5000"),
        (Target("insert_many / Core insert()", _ratio("insert_many / hand-written"), ">=", 1.0, "x", "#8 item 11"),),
    ),
    Benchmark(
        "event_store_append",
        ("--rounds", "9", "--streams", "50", "--singles", "200"),
        (
            Target(
                "streams x 10 events: keel / eventsourcing",
                _ratio("streams: keel / eventsourcing"),
                ">=",
                2.0,
                "x",
                "#9",
            ),
            Target(
                "single-event appends: keel / eventsourcing",
                _ratio("single:  keel / eventsourcing"),
                ">=",
                2.0,
                "x",
                "#9",
            ),
        ),
    ),
    Benchmark(
        "event_store_batch",
        ("--rounds", "5", "--events", "10000"),
        (Target("append_many / asyncpg COPY", _ratio("keel append_many / asyncpg COPY"), ">=", 0.5, "x", "#9"),),
    ),
    Benchmark(
        "event_store_load",
        ("--rounds", "3", "--loads", "5"),
        figures=(("snapshot + tail / full replay (1,000 events)", _ratio("snapshot / full replay"), "x"),),
    ),
    Benchmark(
        "event_store_read_all",
        ("--seconds", "3", "--rounds", "2"),
        figures=(
            ("read_all tail, commit-to-visible p99", r"commit-to-visible p50 [\d.]+ ms, p99 (?P<v>[\d.]+) ms", " ms"),
            ("serialised writers / xid visibility", _ratio("serialised / xid visibility writer throughput"), "x"),
        ),
    ),
    Benchmark(
        "outbox_relay",
        ("--rounds", "4", "--ops", "40", "--events", "1000"),
        (
            Target("commit with outbox rows / without", _ratio("commit with outbox / without"), ">=", 0.9, "x", "#10"),
            Target(
                "relay (LISTEN/NOTIFY) / direct publish",
                _ratio(r"relay \(LISTEN/NOTIFY\) / direct throughput"),
                ">=",
                0.5,
                "x",
                "#10",
            ),
            Target(
                "commit-to-publish p50, LISTEN/NOTIFY",
                r"^outbox, LISTEN/NOTIFY\s+[\d.]+\s+(?P<v>[\d.]+)",
                "<",
                50.0,
                " ms",
                "#10",
            ),
        ),
    ),
    Benchmark(
        "cache",
        ("--rounds", "4", "--ops", "200"),
        (Target("Repository.get, Redis hit / no cache", _ratio("cached / uncached"), ">", 1.0, "x", "#11"),),
    ),
    Benchmark(
        "telemetry_overhead",
        ("--rounds", "4", "--ops", "30"),
        (Target("tracing + metrics on / off", r"^\s*\S.* / off = (?P<v>\d+\.\d+)x", ">=", 0.9, "x", "#11"),),
    ),
    Benchmark(
        "audit_overhead",
        ("--rounds", "4", "--ops", "30"),
        (Target("audit on / off", _ratio("audit on / off"), ">=", 0.9, "x", "#11"),),
    ),
    Benchmark(
        "replicas",
        (),
        figures=(("primary + replica / primary alone, reads/s", _ratio("primary \\+ replica / primary alone"), "x"),),
    ),
    Benchmark(
        "peers",
        ("--rounds", "5", "--ops", "100"),
        figures=(
            ("keel / advanced-alchemy repository", _ratio("keel / advanced-alchemy"), "x"),
            ("keel / hand-written SQLAlchemy", _ratio("keel / hand-written SQLAlchemy"), "x"),
            ("keel / raw asyncpg (the floor)", _ratio("keel / raw asyncpg"), "x"),
        ),
    ),
    Benchmark(
        "soak",
        ("--connections", "40", "--seconds", "60"),
        figures=(
            ("allocation API under load, throughput", r"= (?P<v>\d+) req/s", " req/s"),
            ("allocation API under load, p50", r"latency: p50 (?P<v>[\d.]+) ms", " ms"),
            ("allocation API under load, p99", r"latency: p50 [\d.]+ ms, p99 (?P<v>[\d.]+) ms", " ms"),
        ),
    ),
    Benchmark(
        "api_throughput",
        ("--rounds", "3", "--connections", "20", "--seconds", "15"),
        figures=(
            ("allocation API req/s: keel / hand-written FastAPI", _ratio("throughput: keel / hand-written"), "x"),
            ("allocation API p99: keel / hand-written FastAPI", _ratio("p99 latency: keel / hand-written"), "x"),
        ),
    ),
)

#: The side after the baseline in ``benchmarks.instructions``' report: its "/ first" ratio.
_SECOND_SIDE = r"/ first\n.*\n.*?(?P<v>\d+\.\d+)x$"


def _counted(name: str, what: str, bound: float, sizes: tuple[str, ...]) -> Benchmark:
    target = Target(f"instructions: {what}", _SECOND_SIDE, "<=", bound, "x", "#8 item 11")
    return Benchmark(
        f"instructions {name}", (name, *sizes), (target,), module="instructions", quick_args=(name, "--quick")
    )


#: Counted with cachegrind when ``--instructions`` is given (keel's instructions per operation / the baseline's).
INSTRUCTIONS: tuple[Benchmark, ...] = (
    _counted("uow_overhead", "keel / hand-written", 1.02, ("--small", "40", "--large", "240", "--warmup", "30")),
    _counted(
        "pagination",
        "cursor page / hand-written keyset SELECT",
        1.05,
        ("--small", "20", "--large", "80", "--warmup", "10"),
    ),
    _counted("bulk_insert", "insert_many / Core executemany", 1.0, ("--small", "10", "--large", "40", "--warmup", "5")),
)
