"""The ``keel`` command line.

One Click group, :data:`cli`; each concern adds its commands from a private
module of this package (``keel.cli._db``, ``keel.cli._outbox``, ...) with one
``cli.add_command(...)`` line below, and imports what it runs inside the
command, so ``keel --help`` stays fast and needs no optional extra.

Click rather than argparse: nested command groups, ``--help`` on every
command, typed options and testing through ``click.testing.CliRunner`` come
with it, and it is what Alembic's and Celery's users already know.

.. versionchanged:: 0.2 built on Click; ``main(argv)`` still returns the exit code.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from keel import __version__
from keel.cli._db import db
from keel.cli._events import events
from keel.cli._health import health
from keel.cli._outbox import outbox


@click.group(name="keel", invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="keel", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """keel: the shared floor of Python services."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``keel`` command with ``argv`` (default: the process's arguments); return its exit code."""
    try:
        result = cli.main(args=None if argv is None else list(argv), prog_name="keel", standalone_mode=False)
    except click.exceptions.Exit as stop:
        return stop.exit_code
    except click.ClickException as refused:
        refused.show()
        return refused.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 1
    return result if isinstance(result, int) else 0


__all__ = ["cli", "main"]


cli.add_command(db)
cli.add_command(health)
cli.add_command(outbox)
cli.add_command(events)
