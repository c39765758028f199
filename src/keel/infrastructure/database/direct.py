"""Session-mode connections for LISTEN/NOTIFY, which a transaction-mode pooler cannot carry.

Behind PgBouncer in transaction mode (``KEEL_DATABASE__PGBOUNCER=true``) each
transaction may run on a different server connection, so a ``LISTEN`` is
lost as soon as its transaction ends. Components that wait for notifications
(the outbox relay, projection workers) open their listening connection with
:func:`open_listen_connection`, which goes to ``KEEL_DATABASE__DIRECT_URL``
(the primary itself, or the pooler's session-mode port); everything else keeps
using the pooled engine. ``NOTIFY`` itself is transactional and works through
the pooler.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from keel.config import DatabaseSettings, KeelSettings
from keel.cross_cutting.error import ConfigurationError
from keel.infrastructure.database.engine import _database_settings, create_engine


def direct_settings(settings: KeelSettings | DatabaseSettings | None = None) -> DatabaseSettings:
    """The database settings for a session-mode connection: ``direct_url``, no pooler workarounds.

    Refuses (``ConfigurationError``) a configuration whose URL goes through a
    transaction pooler and that names no ``direct_url``: LISTEN would be lost silently.
    """
    db = _database_settings(settings)
    if db.direct_url is None:
        if db.pgbouncer:
            raise ConfigurationError(
                "KEEL_DATABASE__PGBOUNCER is set but KEEL_DATABASE__DIRECT_URL is not: LISTEN/NOTIFY needs a "
                "session-mode connection that does not go through the transaction pooler",
                variables=["KEEL_DATABASE__DIRECT_URL"],
            )
        return db
    return db.model_copy(update={"url": db.effective_direct_url, "password": None, "pgbouncer": False, "replicas": []})


def create_direct_engine(settings: KeelSettings | DatabaseSettings | None = None, **overrides: Any) -> AsyncEngine:
    """An engine on the session-mode URL (see :func:`direct_settings`), for work that needs one connection."""
    return create_engine(direct_settings(settings), **overrides)


async def open_listen_connection(settings: KeelSettings | DatabaseSettings | None = None) -> Any:
    """A plain ``asyncpg`` connection on the session-mode URL, for ``add_listener`` (LISTEN).

    The caller closes it. PostgreSQL only.
    """
    import asyncpg  # the optional driver: loaded only by a component that listens

    db = direct_settings(settings)
    url = db.effective_url
    if url.get_backend_name() != "postgresql":
        raise ConfigurationError("LISTEN/NOTIFY needs PostgreSQL", variables=["KEEL_DATABASE__URL"])
    return await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        database=url.database,
        timeout=db.connect_timeout,
        server_settings={"application_name": db.application_name},
    )
