"""What the SQL repository sends: round trips, statement shapes, errors translated."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from sqlalchemy import Identity, String, event, func, select
from sqlalchemy.exc import InvalidRequestError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from keel import DatabaseError, SqlAlchemyRepository, SqlAlchemyUnitOfWork, ValidationError
from keel.config import KeelSettings, RepositorySettings
from keel.container import KeelContainer, running
from keel.infrastructure.database import create_session_factory
from keel.infrastructure.database._translate import translating
from keel.infrastructure.repository.settings import repository_defaults
from keel.orm import Base
from tests.contract.models import ContractUnitOfWork, Item, Plain
from tests.support import seeding

Factory = async_sessionmaker[AsyncSession]


class Stamped(Base):
    """Defaults only the INSERT can compute: a SQL expression and a function of the execution context."""

    __tablename__ = "repo_stamped"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str | None] = mapped_column(String(20), default=func.upper("sql"))
    origin: Mapped[str | None] = mapped_column(String(20), default=lambda context: "context")


class MixedCase(Base):
    __tablename__ = "repo_MixedCase"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


class AlwaysIdentity(Base):
    __tablename__ = "repo_always_identity"
    id: Mapped[int] = mapped_column(Identity(always=True), primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


class BulkUnitOfWork(SqlAlchemyUnitOfWork):
    stamped: SqlAlchemyRepository[Stamped]
    mixed: SqlAlchemyRepository[MixedCase]
    always: SqlAlchemyRepository[AlwaysIdentity]


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Collect the SQL text of every statement the engine executes meanwhile."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


def selects(sql: list[str]) -> list[str]:
    return [s for s in sql if s.startswith("SELECT")]


async def seed(factory: Factory, count: int) -> None:
    await seeding.seed(
        ContractUnitOfWork(factory), items=(Item(name=f"n{i:04}", rank=i % 7 or None) for i in range(count))
    )


async def test_add_many_inserts_in_batches_not_row_by_row(engine: AsyncEngine, session_factory: Factory) -> None:
    """2,500 entities with client-side keys go out as a few multi-row INSERTs (insertmanyvalues)."""
    async with ContractUnitOfWork(session_factory) as uow:
        uow.plain.add_many(Plain(code=f"c{i}", qty=i) for i in range(2500))
        with statements(engine) as sql:
            await uow.commit()
    # Without RETURNING to read back, the driver's executemany takes every row in one call.
    inserts = [s for s in sql if s.startswith("INSERT")]
    assert len(inserts) == 1


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_add_many_batches_server_generated_keys_on_postgresql(
    engine: AsyncEngine, session_factory: Factory
) -> None:
    """On PostgreSQL even SERIAL keys come back from batched INSERT ... RETURNING, in order."""
    with statements(engine) as sql:
        await seed(session_factory, 2500)
    inserts = [s for s in sql if s.startswith("INSERT")]
    assert 1 <= len(inserts) <= 5


async def test_offset_page_costs_one_count_and_one_select(engine: AsyncEngine, session_factory: Factory) -> None:
    """paginate: a COUNT (no window function) and the page query, nothing else."""
    await seed(session_factory, 30)
    async with ContractUnitOfWork(session_factory) as uow:
        with statements(engine) as sql:
            page = await uow.items.paginate(page=2, size=10, order_by="-rank")
    assert page.total == 30
    queries = selects(sql)
    assert len(queries) == 2
    assert "count(*)" in queries[0].lower()
    assert "over" not in " ".join(queries).lower()
    assert "OFFSET" in queries[1]


async def test_cursor_page_is_one_select_without_offset(engine: AsyncEngine, session_factory: Factory) -> None:
    """paginate_by_cursor: one keyset query, no COUNT and no OFFSET, even deep in the set."""
    await seed(session_factory, 30)
    async with ContractUnitOfWork(session_factory) as uow:
        page = await uow.items.paginate_by_cursor(size=10, order_by="name")
        page = await uow.items.paginate_by_cursor(size=10, order_by="name", cursor=page.next_cursor)
        with statements(engine) as sql:
            await uow.items.paginate_by_cursor(size=10, order_by="name", cursor=page.next_cursor)
    (query,) = selects(sql)
    # SQLite's dialect always renders "LIMIT ? OFFSET ?"; the offset it sends is then 0.
    assert "OFFSET" not in query.replace("LIMIT ? OFFSET ?", "LIMIT ?")
    assert "count(" not in query.lower()
    assert "LIMIT" in query


async def test_not_null_orderings_use_a_row_value_comparison(engine: AsyncEngine, session_factory: Factory) -> None:
    """With NOT NULL keys in one direction the keyset predicate is (a, b) > (x, y): index-friendly."""
    await seed(session_factory, 5)
    async with ContractUnitOfWork(session_factory) as uow:
        page = await uow.items.paginate_by_cursor(size=2, order_by="-created_at")
        with statements(engine) as sql:
            await uow.items.paginate_by_cursor(size=2, order_by="-created_at", cursor=page.next_cursor)
    (query,) = selects(sql)
    assert "(repo_items.created_at, repo_items.id) <" in query


async def test_nullable_sort_keys_spell_out_null_placement(engine: AsyncEngine, session_factory: Factory) -> None:
    """ORDER BY on a nullable column says NULLS LAST/FIRST, so SQLite and PostgreSQL agree."""
    async with ContractUnitOfWork(session_factory) as uow:
        with statements(engine) as sql:
            await uow.items.list(order_by=["rank", "-category"])
    (query,) = selects(sql)
    assert "rank ASC NULLS LAST" in query
    assert "category DESC NULLS FIRST" in query


async def test_update_many_is_one_statement(engine: AsyncEngine, session_factory: Factory) -> None:
    """update_many sends a single UPDATE ... WHERE for any number of rows."""
    await seed(session_factory, 40)
    async with ContractUnitOfWork(session_factory) as uow:
        with statements(engine) as sql:
            assert await uow.items.update_many(Item.rank.is_(None), values={"category": "none"}) == 6
        await uow.commit()
    updates = [s for s in sql if s.startswith("UPDATE")]
    assert len(updates) == 1
    assert "version=(repo_items.version + " in updates[0].replace(" = ", "=")


@pytest.mark.parametrize("as_mappings", [False, True], ids=["entities", "mappings"])
async def test_insert_many_applies_defaults_only_the_insert_can_compute(
    session_factory: Factory, as_mappings: bool
) -> None:
    """SQL-expression and context defaults are stored as add() stores them, never as NULL."""
    async with BulkUnitOfWork(session_factory) as uow:
        uow.stamped.add(Stamped(id=1))
        items: list[Any] = (
            [{"id": 2}, {"id": 3, "label": "given"}] if as_mappings else [Stamped(id=2), Stamped(id=3, label="given")]
        )
        assert await uow.stamped.insert_many(items) == 2
        await uow.commit()
    async with session_factory() as session:
        rows = (await session.execute(select(Stamped.id, Stamped.label, Stamped.origin).order_by(Stamped.id))).all()
    assert [tuple(r) for r in rows] == [(1, "SQL", "context"), (2, "SQL", "context"), (3, "given", "context")]


async def test_insert_many_reserves_keys_of_a_mixed_case_table(session_factory: Factory) -> None:
    """A table name that needs quoting still gets its generated keys (PostgreSQL reserves them from the sequence)."""
    async with BulkUnitOfWork(session_factory) as uow:
        rows = [MixedCase(name="a"), MixedCase(name="b")]
        assert await uow.mixed.insert_many(rows) == 2
        await uow.commit()
    assert sorted(r.id for r in rows) == [1, 2]
    async with BulkUnitOfWork(session_factory) as uow:
        assert [r.name for r in await uow.mixed.list(order_by="id")] == ["a", "b"]


async def test_insert_many_reads_back_keys_of_an_always_generated_identity(
    engine: AsyncEngine, session_factory: Factory
) -> None:
    """GENERATED ALWAYS AS IDENTITY refuses explicit keys, so they are read back instead of reserved."""
    async with BulkUnitOfWork(session_factory) as uow:
        rows = [AlwaysIdentity(name="a"), AlwaysIdentity(name="b")]
        with statements(engine) as sql:
            assert await uow.always.insert_many(rows) == 2
        await uow.commit()
    assert sorted(r.id for r in rows) == [1, 2]
    assert not any("nextval" in s for s in sql)
    async with BulkUnitOfWork(session_factory) as uow:
        assert {r.id: r.name for r in await uow.always.list()} == {r.id: r.name for r in rows}


async def test_a_value_no_column_type_can_bind_is_a_validation_error(session_factory: Factory) -> None:
    """A raw expression with a datetime that overflows in UTC fails as ValidationError, not a StatementError."""
    far = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))
    async with ContractUnitOfWork(session_factory) as uow:
        with pytest.raises(ValidationError) as caught:
            await uow.items.count(Item.created_at >= far)
    assert "OverflowError" in caught.value.message
    assert caught.value.details["entity"] == "Item"


async def test_session_factories_carry_their_own_repository_settings(engine: AsyncEngine) -> None:
    """Two factories on one engine keep their own page limits and cursor secrets; the process defaults stay."""
    small = create_session_factory(
        engine, repository_settings=RepositorySettings(max_page_size=5, default_page_size=2, cursor_secret="a")
    )
    large = create_session_factory(engine, repository_settings=RepositorySettings(cursor_secret="b"))
    await seed(small, 6)
    async with ContractUnitOfWork(small) as uow:
        first = await uow.items.paginate_by_cursor()
        assert len(first.items) == 2
        with pytest.raises(ValidationError):
            await uow.items.paginate(size=10)
    async with ContractUnitOfWork(large) as uow:
        assert len((await uow.items.paginate(size=10)).items) == 6
        with pytest.raises(ValidationError) as caught:
            await uow.items.paginate_by_cursor(cursor=first.next_cursor)
        assert caught.value.errors[0]["type"] == "invalid_cursor"
    async with ContractUnitOfWork(small) as uow:
        assert len((await uow.items.paginate_by_cursor(cursor=first.next_cursor)).items) == 2
    assert (repository_defaults.max_page_size, repository_defaults.default_page_size) == (1000, 50)


async def test_a_subclass_setting_beats_the_session_factorys(engine: AsyncEngine) -> None:
    """A repository class that sets max_page_size keeps it whatever the factory carries."""

    class ExportRepository(SqlAlchemyRepository[Item]):
        max_page_size = 20

    factory = create_session_factory(
        engine, repository_settings=RepositorySettings(max_page_size=5, default_page_size=5)
    )
    await seed(factory, 12)
    async with factory() as session:
        assert len((await ExportRepository(session).paginate(size=12)).items) == 12
        with pytest.raises(ValidationError):
            await SqlAlchemyRepository(session, model=Item).paginate(size=12)


async def test_two_containers_in_one_process_keep_their_repository_settings(tmp_path: Path) -> None:
    """Starting a second container does not change the first one's page limits or cursor secret."""
    containers = []
    for name, maximum in (("a", 3), ("b", 30)):
        container = KeelContainer()
        url = f"sqlite+aiosqlite:///{tmp_path / name}.db"
        settings = KeelSettings(
            database={"url": url}, repository={"max_page_size": maximum, "default_page_size": 2, "cursor_secret": name}
        )
        container.settings.override(providers.Object(settings))
        containers.append(container)
    async with running(containers[0]) as first, running(containers[1]) as second:
        for container in (first, second):
            async with container.engine().begin() as conn:
                await conn.run_sync(Base.metadata.create_all, tables=[Base.metadata.tables[Item.__tablename__]])
            await seed(container.session_factory(), 5)
        async with ContractUnitOfWork(first.session_factory()) as uow:
            with pytest.raises(ValidationError):
                await uow.items.paginate(size=4)
            page = await uow.items.paginate_by_cursor(size=2)
        async with ContractUnitOfWork(second.session_factory()) as uow:
            assert len((await uow.items.paginate(size=4)).items) == 4
            with pytest.raises(ValidationError):
                await uow.items.paginate_by_cursor(size=2, cursor=page.next_cursor)
        async with ContractUnitOfWork(first.session_factory()) as uow:
            assert len((await uow.items.paginate_by_cursor(size=2, cursor=page.next_cursor)).items) == 2


def test_statement_errors_raised_before_the_driver_are_keel_errors() -> None:
    """A value that cannot be bound is a ValidationError; any other failure to prepare is a DatabaseError."""
    unbindable = StatementError("boom", "SELECT :x", {"x": "secret"}, OverflowError("date value out of range"))
    with pytest.raises(ValidationError) as caught, translating(entity="Item"):
        raise unbindable
    assert "secret" not in caught.value.message
    with pytest.raises(DatabaseError), translating():
        raise StatementError("boom", "SELECT :x", {}, InvalidRequestError("a value is required for bind parameter"))
