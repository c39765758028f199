"""keel's own Alembic migrations, shipped inside the package under the branch label ``keel``.

An application runs them beside its own migrations from its own Alembic
environment:

* ``alembic.ini``: add :data:`VERSIONS_LOCATION` to ``version_locations``
  (one per line, with ``path_separator = newline``: the location holds a colon);
* ``env.py``: :func:`database_settings` for the URL (``KEEL_DATABASE__URL``
  wins over ``alembic init``'s placeholder ``sqlalchemy.url``),
  ``target_metadata = target_metadata(Base.metadata)`` so
  autogenerate knows keel's tables and never proposes to drop them, and
  ``render_item=render_item`` so custom column types import themselves;
* ``alembic upgrade heads`` (every branch) or ``alembic upgrade keel@head``.

:func:`upgrade` does the same from Python, e.g. at a program's start, and
:func:`migration_state` tells whether a database is at every head (the
readiness probe, ``check_database(engine, alembic_config=...)``, uses it).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData
from sqlalchemy.engine import URL

from keel.cross_cutting.error import ConfigurationError
from keel.infrastructure.database.migrations._environment import run_migrations
from keel.infrastructure.database.migrations._settings import EXPLICIT_URL, database_settings
from keel.infrastructure.database.orm import keel_metadata
from keel.infrastructure.database.types import UTCDateTime

#: The ``version_locations`` entry for keel's migrations (a package resource).
VERSIONS_LOCATION = "keel.infrastructure.database.migrations:versions"
#: The Alembic branch label of keel's migrations: ``alembic upgrade keel@head``.
BRANCH = "keel"
#: Modules that define tables on ``keel_metadata``; importing them fills it.
TABLE_MODULES: tuple[str, ...] = ("keel.infrastructure.database.tables",)
#: Column types rendered as ``keel.orm.<Name>`` in generated migrations.
_PUBLIC_TYPES: frozenset[type[Any]] = frozenset({UTCDateTime})


def target_metadata(*application: MetaData) -> list[MetaData]:
    """The ``target_metadata`` for an env.py: the application's metadata plus keel's."""
    for module in TABLE_MODULES:
        importlib.import_module(module)
    return [*application, keel_metadata]


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Autogenerate hook: a column type from outside SQLAlchemy imports its module.

    Alembic renders such types by their full dotted path but adds no import
    for it, so a generated migration would fail with ``NameError``.
    """
    if type_ != "type" or type(obj).__module__.startswith("sqlalchemy."):
        return False
    if type(obj) in _PUBLIC_TYPES:
        # The public spelling, so keel can move its internals without breaking old migrations.
        autogen_context.imports.add("import keel.orm")
        return f"keel.orm.{obj!r}"
    autogen_context.imports.add(f"import {type(obj).__module__}")
    return False


def alembic_config(config_path: str | Path = "alembic.ini", url: str | URL | None = None) -> Config:
    """An Alembic :class:`Config` for ``config_path``, aimed at ``url`` when given.

    The caller's logging configuration is left alone.
    """
    path = Path(config_path)
    if not path.is_file():
        raise ConfigurationError(f"Alembic configuration {str(path)!r} not found", config_path=str(path))
    config = Config(str(path))
    config.attributes["configure_logger"] = False
    if url is not None:
        rendered = url.render_as_string(hide_password=False) if isinstance(url, URL) else str(url)
        # ConfigParser interpolates "%": a URL-encoded password would break it.
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
        config.attributes[EXPLICIT_URL] = rendered  # so database_settings() prefers it to KEEL_DATABASE__URL
    return config


def upgrade(url: str | URL | None = None, *, config_path: str | Path = "alembic.ini", revision: str = "heads") -> None:
    """Upgrade the database at ``url`` (default: the environment's) to ``revision``.

    Synchronous, because Alembic's async environments start their own event
    loop: call it before yours starts, or ``await asyncio.to_thread(upgrade, ...)``.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise ConfigurationError(
            "migrations.upgrade() blocks and starts its own event loop: "
            "inside a running loop, use `await asyncio.to_thread(upgrade, ...)`"
        )
    command.upgrade(alembic_config(config_path, url), revision)


def keel_heads() -> frozenset[str]:
    """The head revision(s) of keel's own branch."""
    versions = str(Path(__file__).parent / "versions")
    return frozenset(ScriptDirectory(versions, version_locations=[versions]).get_heads())


def expected_heads(config: Config | str | Path = "alembic.ini") -> frozenset[str]:
    """Every head a database must be at: the application's branches (from its Alembic config) and keel's.

    keel's are included even when the config does not list
    :data:`VERSIONS_LOCATION`, so a forgotten branch still counts as pending.
    """
    cfg = config if isinstance(config, Config) else alembic_config(config)
    return frozenset(ScriptDirectory.from_config(cfg).get_heads()) | keel_heads()


@dataclass(frozen=True, slots=True)
class MigrationState:
    """Where a database stands against the code's migrations."""

    #: Heads the database has not reached (none applied yet, or an older revision).
    missing: frozenset[str]
    #: Revisions the database is at that are not heads (older, or unknown to this code).
    unexpected: frozenset[str]

    @property
    def at_head(self) -> bool:
        return not self.missing and not self.unexpected

    def describe(self) -> str:
        if self.at_head:
            return "migrations are at head"
        parts = []
        if self.missing:
            parts.append(f"not at head {', '.join(sorted(self.missing))}")
        if self.unexpected:
            parts.append(f"at revision(s) {', '.join(sorted(self.unexpected))} that are not heads")
        return "migrations pending: " + "; ".join(parts) + " (run `alembic upgrade heads`)"


def migration_state(connection: Connection, expected: Collection[str]) -> MigrationState:
    """Compare the database's ``alembic_version`` with ``expected`` heads (synchronous: use ``run_sync``)."""
    current = frozenset(MigrationContext.configure(connection).get_current_heads())
    wanted = frozenset(expected)
    return MigrationState(missing=wanted - current, unexpected=current - wanted)


__all__ = [
    "BRANCH",
    "TABLE_MODULES",
    "VERSIONS_LOCATION",
    "MigrationState",
    "alembic_config",
    "database_settings",
    "expected_heads",
    "keel_heads",
    "migration_state",
    "render_item",
    "run_migrations",
    "target_metadata",
    "upgrade",
]
