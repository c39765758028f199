"""keel's SQLAlchemy listeners are registered in one explicit place, once, never by importing a module.

Each test runs in a fresh interpreter: this test process has long since
installed them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

_COUNT = """
from sqlalchemy.orm import Mapper, Session

from keel.infrastructure.database import listeners

def modules(fn):
    # The listener's own module, and those of the functions SQLAlchemy's wrapper closes over.
    yield fn.__module__ or ""
    for cell in fn.__closure__ or ():
        yield getattr(cell.cell_contents, "__module__", None) or ""

def keel_listeners():
    # Per event, how many of keel's own functions are registered (Mapper wraps its listeners).
    found = {}
    for target, name in [(Session, "before_flush"), (Session, "do_orm_execute"), (Mapper, "before_delete")]:
        registered = getattr(target.dispatch, name)._clslevel.get(target, ())
        found[name] = sum(1 for fn in registered if any(m.startswith("keel.") for m in modules(fn)))
    return found
"""


def _run(code: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_COUNT) + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


def test_importing_keel_registers_no_session_listener_until_install_runs() -> None:
    """Importing keel, its adapters, the twin and the container leaves Session and Mapper events untouched."""
    out = _run(
        """
        import keel, keel.infrastructure, keel.infrastructure.database, keel.infrastructure.repository
        import keel.testing, keel.container, keel.infrastructure.database.errors
        print(keel_listeners(), listeners.installed())
        listeners.install()
        print(keel_listeners(), listeners.installed())
        """
    )
    before, after = out.splitlines()
    assert before == "{'before_flush': 0, 'do_orm_execute': 0, 'before_delete': 0} False"
    # No soft-deletable class is mapped yet: the read filter could hide nothing, so it waits.
    assert after == "{'before_flush': 3, 'do_orm_execute': 0, 'before_delete': 1} True"


@pytest.mark.parametrize("mapped_first", [True, False])
def test_the_soft_delete_filter_is_registered_once_a_soft_deletable_class_is_mapped(mapped_first: bool) -> None:
    """Mapped before install() or after it, a soft-deletable class gets its read filter before it loads a row."""
    define = """
        from sqlalchemy.orm import Mapped, mapped_column
        from keel.orm import Base, SoftDeleteMixin

        class Hidden(Base, SoftDeleteMixin):
            __tablename__ = "listener_test_hidden"
            id: Mapped[int] = mapped_column(primary_key=True)
        """
    out = _run(
        (define if mapped_first else "")
        + """
        listeners.install()
        print(keel_listeners()["do_orm_execute"], listeners.installed())
        """
        + ("" if mapped_first else define + 'print(keel_listeners()["do_orm_execute"], listeners.installed())\n')
    )
    assert out.splitlines()[-1] == "1 True"


def test_install_twice_registers_each_listener_once() -> None:
    """A second install(), even one past its cache, adds nothing."""
    out = _run(
        """
        listeners.install()
        listeners.install()
        listeners.install.__wrapped__()
        from tests.contract.models import Item  # soft-deletable: the read filter is registered too
        listeners.install.__wrapped__()
        print(keel_listeners())
        """
    )
    assert out == "{'before_flush': 3, 'do_orm_execute': 1, 'before_delete': 1}"


@pytest.mark.parametrize(
    "build",
    [
        "SqlAlchemyUnitOfWork(factory)",
        "SqlAlchemyRepository(factory(), model=Item)",
        "create_session_factory(engine)",
        "create_engine(DatabaseSettings(url='sqlite+aiosqlite://'))",
    ],
)
def test_every_way_into_a_keel_session_installs_the_listeners(build: str) -> None:
    """A hand-built session factory gets every behaviour once a unit of work or repository uses it."""
    out = _run(
        f"""
        import asyncio
        from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
        from keel import SqlAlchemyRepository, SqlAlchemyUnitOfWork
        from keel.config import DatabaseSettings
        from keel.infrastructure.database import create_engine, create_session_factory
        from tests.contract.models import Item

        engine = create_async_engine("sqlite+aiosqlite://")
        factory = async_sessionmaker(engine)
        assert not listeners.installed()

        async def main():
            built = {build}
            if isinstance(built, SqlAlchemyUnitOfWork):
                async with built:
                    pass

        asyncio.run(main())
        print(listeners.installed(), keel_listeners())
        """
    )
    assert out == "True {'before_flush': 3, 'do_orm_execute': 1, 'before_delete': 1}"
