"""``keel events run|replay|status``: run, rebuild and inspect the application's projections.

The projections come from ``KEEL_EVENT_STORE__PROJECTIONS`` (``module:attribute``
entries), the database from ``KEEL_DATABASE__*``.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, TypeVar

import click

if TYPE_CHECKING:
    from keel.event_store import ProjectionRunner

T = TypeVar("T")
#: Exit status of a replay stopped by Ctrl-C or SIGTERM (rerun it to resume).
INTERRUPTED = 130


@asynccontextmanager
async def _runner() -> AsyncIterator[ProjectionRunner]:
    from keel.config import load_settings
    from keel.event_store import ProjectionRunner
    from keel.infrastructure.database import create_engine, create_session_factory
    from keel.infrastructure.event_store._loading import load_projections

    settings = load_settings()
    options = settings.event_store
    projections = load_projections(options.projections)
    engine = create_engine(settings)
    try:
        yield ProjectionRunner(
            create_session_factory(engine),
            projections,
            batch_size=options.projection_batch_size,
            poll_interval=options.projection_poll_interval,
            claim_interval=options.projection_claim_interval,
            database=settings,
        )
    finally:
        await engine.dispose()


def _run(work: Callable[[], Awaitable[T]]) -> T:
    from keel.cross_cutting.error import KeelError

    try:
        return asyncio.run(work())  # type: ignore[arg-type]
    except KeelError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def events() -> None:
    """Run, replay and inspect projections (KEEL_EVENT_STORE__PROJECTIONS names them)."""


@events.command()
def run() -> None:
    """Run the projections as a worker until SIGTERM or Ctrl-C (several workers share them)."""

    async def work() -> None:
        async with _runner() as runner:
            click.echo(f"running {len(runner.projections)} projection(s): {', '.join(sorted(runner.projections))}")
            await runner.run_until_signalled()

    _run(work)


@events.command()
@click.argument("name")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def replay(name: str, quiet: bool) -> None:
    """Rebuild projection NAME from position 0; interrupted, rerun it to resume from its checkpoint."""

    async def work() -> int | None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, task.cancel)
        try:
            async with _runner() as runner:
                runner.projection(name)
                with _progress_bar(name, quiet) as progress:
                    return await runner.replay(name, progress)
        except asyncio.CancelledError:
            return None

    position = _run(work)
    if position is None:
        click.echo(f"replay of {name} interrupted: run `keel events replay {name}` again to resume", err=True)
        raise SystemExit(INTERRUPTED)
    click.echo(f"{name} replayed up to position {position}")


@contextmanager
def _progress_bar(name: str, quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar fed (position, head); none with ``--quiet`` or without the ``cli`` extra."""
    if quiet:
        yield None
        return
    try:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    except ImportError:  # the optional `cli` extra
        click.echo("(pip install 'keel-framework[cli]' for a progress bar)", err=True)
        yield None
        return
    bar = Progress(TextColumn(f"replaying {name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    task = bar.add_task("replay", total=None)
    with bar:
        yield lambda position, head: bar.update(task, completed=position, total=head)


@events.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per projection, in a list.")
def status(as_json: bool) -> None:
    """Each projection's checkpoint, the head position and the lag between."""

    async def work() -> list[dict[str, object]]:
        async with _runner() as runner:
            return [asdict(s) for s in await runner.status()]

    rows = _run(work)
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("no projections configured (KEEL_EVENT_STORE__PROJECTIONS)")
        return
    click.echo(f"{'projection':<30} {'position':>10} {'head':>10} {'lag':>10}")
    for row in rows:
        note = "  (replaying)" if row["replaying"] else ""
        click.echo(f"{row['name']!s:<30} {row['position']:>10} {row['head']:>10} {row['lag']:>10}{note}")
