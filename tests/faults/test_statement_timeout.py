"""A query past statement_timeout: StatementTimeoutError, and its connection goes back to the pool healthy."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from keel import StatementTimeoutError
from keel.config import DatabaseSettings
from keel.infrastructure.database import create_engine, create_session_factory, translating
from tests.models import AppUnitOfWork

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


async def test_a_query_past_statement_timeout_is_a_keel_error_and_the_same_connection_serves_next(
    postgres_url: str,
) -> None:
    """pg_sleep past KEEL_DATABASE__STATEMENT_TIMEOUT: StatementTimeoutError; the pool's one connection is reused."""
    # Not destructive (the server cancels only the statement), so the shared server does.
    engine = create_engine(
        DatabaseSettings(
            url=postgres_url,
            statement_timeout=0.2,
            command_timeout=10,
            application_name=f"keel-{uuid.uuid4().hex}",
            pool_size=1,
            max_connections=1,
            pool_timeout=5,
        )
    )
    factory = create_session_factory(engine)
    try:
        async with AppUnitOfWork(factory) as uow:
            pid_before = (await uow.session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        with pytest.raises(StatementTimeoutError) as raised:
            async with AppUnitOfWork(factory) as uow:
                with translating():  # what repositories do; a statement on uow.session is plain SQLAlchemy
                    await uow.session.execute(text("SELECT pg_sleep(5)"))
        assert raised.value.code == "statement_timeout"
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        async with AppUnitOfWork(factory) as uow:
            pid_after = (await uow.session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            assert (await uow.session.execute(text("SELECT 1"))).scalar_one() == 1
        assert pid_after == pid_before, "the timed-out connection was dropped instead of reused"
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
