"""``keel db``: the application's migrations and keel's, with no ``alembic.ini`` or ``env.py`` to write.

Settings say where things are: ``KEEL_DATABASE__URL`` (the database),
``KEEL_MIGRATIONS__DIRECTORY`` (the application's revisions, default
``migrations``), ``KEEL_MIGRATIONS__METADATA`` (``module:attribute`` of its
``MetaData``, default ``keel.orm:Base.metadata``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from alembic.config import Config


@contextmanager
def _alembic_errors() -> Iterator[None]:
    """Alembic's and keel's refusals as a one-line error and exit code 1, not a traceback."""
    from alembic.util import CommandError

    from keel.cross_cutting.error import KeelError

    try:
        yield
    except CommandError as refused:
        hint = " (run `keel db upgrade` first)" if "not up to date" in str(refused) else ""
        raise click.ClickException(f"{refused}{hint}") from None
    except KeelError as refused:
        raise click.ClickException(str(refused)) from None


def _config(url: str | None) -> Config:
    from keel.config import KeelSettings
    from keel.infrastructure.database.migrations._commands import db_config

    return db_config(KeelSettings(), url=url)


_url_option = click.option(
    "--url", default=None, metavar="URL", help="Database URL (default: KEEL_DATABASE__URL, else ./keel.db)."
)


@click.group(name="db")
def db() -> None:
    """Migrate the database: the application's branch and keel's, together."""


@db.command()
@click.argument("revision", default="heads")
@click.option("--sql", is_flag=True, help="Print the SQL instead of running it (offline mode).")
@_url_option
def upgrade(revision: str, sql: bool, url: str | None) -> None:
    """Upgrade to REVISION (default: every head, keel's and the application's)."""
    from alembic import command

    with _alembic_errors():
        command.upgrade(_config(url), revision, sql=sql)


@db.command()
@click.argument("revision")
@_url_option
def downgrade(revision: str, url: str | None) -> None:
    """Downgrade to REVISION (e.g. `app@-1`, or `base` for everything)."""
    from alembic import command

    with _alembic_errors():
        command.downgrade(_config(url), revision)


@db.command()
@_url_option
@click.option("--verbose", "-v", is_flag=True, help="Show each revision's details.")
def current(url: str | None, verbose: bool) -> None:
    """Show the revision(s) the database is at."""
    from alembic import command

    with _alembic_errors():
        command.current(_config(url), verbose=verbose)


@db.command()
@click.option("--message", "-m", required=True, help="What the revision does.")
@click.option("--autogenerate", is_flag=True, help="Compare the models with the database and write the difference.")
@_url_option
def revision(message: str, autogenerate: bool, url: str | None) -> None:
    """Write a new revision on the application's branch (the first one starts the branch)."""
    from keel.infrastructure.database.migrations._commands import revision as write_revision

    with _alembic_errors():
        path = write_revision(_config(url), message, autogenerate=autogenerate)
    click.echo(f"wrote {path}")


@db.command()
@_url_option
def check(url: str | None) -> None:
    """Exit 1 when the models and the migrations differ (a revision is missing)."""
    from keel.infrastructure.database.migrations._commands import check as check_drift

    with _alembic_errors():
        check_drift(_config(url))
    click.echo("models and migrations agree")


@db.command()
@_url_option
def heads(url: str | None) -> None:
    """Show the head revisions (keel's branch and the application's)."""
    from alembic import command

    with _alembic_errors():
        command.heads(_config(url), verbose=False)
