"""Repository settings have one home: the precedence rule, the defaults object, the cursor key, transient errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr

from keel import ConfigurationError, SqlAlchemyRepository, ValidationError
from keel.config import DEV_CURSOR_SECRET, KeelSettings, RepositorySettings
from keel.infrastructure.repository import configure_repositories, cursor, set_default_cursor_secret
from keel.infrastructure.repository.settings import (
    DEVELOPMENT_SECRET,
    REPOSITORY_SETTINGS,
    repository_defaults,
    resolve_cursor_secret,
    resolve_setting,
)
from keel.testing import InMemoryRepository, InMemoryStore, InMemoryUnitOfWork
from tests.contract.models import Item


@pytest.fixture(autouse=True)
def restore_defaults() -> Iterator[None]:
    """Leave the process-wide defaults as they were."""
    saved = repository_defaults.copy()
    yield
    repository_defaults.restore(saved)


class Own(SqlAlchemyRepository[Item]):
    max_page_size: ClassVar[int | None] = 0
    default_page_size: ClassVar[int | None] = 0


class Nearer(Own):
    default_page_size = 3


def _session_info(**settings: Any) -> dict[str, Any]:
    return {REPOSITORY_SETTINGS: RepositorySettings(**settings)}


def _resolve(repository: object, name: str, info: dict[str, Any] | None) -> Any:
    return resolve_setting(repository, name, info, base=SqlAlchemyRepository)


def test_a_subclass_zero_is_a_value_that_wins_over_the_session_and_the_defaults() -> None:
    """0 set on a repository subclass is used as 0, not treated as unset and replaced by the session's value."""
    repo = object.__new__(Own)
    info = _session_info(max_page_size=9, default_page_size=5)
    assert _resolve(repo, "max_page_size", info) == 0
    assert _resolve(repo, "default_page_size", info) == 0
    assert _resolve(repo, "default_page_size", None) == 0


def test_the_nearest_subclass_wins_and_unset_knobs_come_from_further_up() -> None:
    """A subclass's own value beats its parent's; a knob it does not set comes from the parent."""
    repo = object.__new__(Nearer)
    assert _resolve(repo, "default_page_size", _session_info()) == 3
    assert _resolve(repo, "max_page_size", _session_info()) == 0


def test_the_session_settings_win_over_the_process_defaults() -> None:
    """Without a subclass value, the session factory's settings apply, whatever the process defaults say."""
    repository_defaults.replace(max_page_size=70, default_page_size=7, cursor_secret="process")
    repo = object.__new__(SqlAlchemyRepository)
    info = _session_info(max_page_size=9, default_page_size=5, cursor_secret="session")
    assert (_resolve(repo, "max_page_size", info), _resolve(repo, "default_page_size", info)) == (9, 5)
    assert resolve_cursor_secret(repo, info, base=SqlAlchemyRepository) == b"session"


def test_the_process_defaults_apply_when_nothing_else_is_set() -> None:
    """A plain repository on a session without settings uses the defaults object, SQL and twin alike."""
    configure_repositories(RepositorySettings(max_page_size=30, default_page_size=4, cursor_secret="d"))
    sql = object.__new__(SqlAlchemyRepository)
    assert (_resolve(sql, "max_page_size", {}), _resolve(sql, "default_page_size", {})) == (30, 4)
    assert resolve_cursor_secret(sql, {}, base=SqlAlchemyRepository) == b"d"
    twin = InMemoryRepository(model=Item)
    assert resolve_setting(twin, "default_page_size", None, base=InMemoryRepository) == 4


async def test_the_twin_respects_a_subclass_zero_as_the_sql_repository_does() -> None:
    """An in-memory repository whose subclass sets default_page_size = 0 refuses a page without a size."""

    class ZeroDefault(InMemoryRepository[Item]):
        default_page_size = 0

    repo = ZeroDefault()
    repo.workspace.store.add(Item(name="a"))
    with pytest.raises(ValidationError) as caught:
        await repo.paginate()
    assert caught.value.details["maximum"] == repository_defaults.max_page_size
    assert len((await repo.paginate(size=1)).items) == 1


async def test_the_twin_takes_settings_in_the_sql_order_with_its_store_as_the_session() -> None:
    """Subclass first, then the store's repository_settings (a session factory's part), then the defaults."""
    configure_repositories(RepositorySettings(max_page_size=30, default_page_size=4))
    store = InMemoryStore(repository_settings=RepositorySettings(max_page_size=3, default_page_size=2))
    store.add(*(Item(name=f"n{i}") for i in range(5)))

    class Larger(InMemoryRepository[Item]):
        max_page_size = 5

    async with InMemoryUnitOfWork(store) as uow:
        plain: InMemoryRepository[Item] = InMemoryRepository.for_unit_of_work(uow, Item)
        assert (await plain.paginate()).size == 2
        with pytest.raises(ValidationError) as caught:
            await plain.paginate(size=4)
        assert caught.value.details["maximum"] == 3
        assert len((await Larger.for_unit_of_work(uow).paginate(size=5)).items) == 5
    assert (await InMemoryRepository(model=Item).paginate()).size == 4


def test_set_default_cursor_secret_and_configure_repositories_update_one_defaults_object() -> None:
    """Both documented setters change repository_defaults; nothing is written onto a repository class."""
    set_default_cursor_secret(SecretStr("rotated"))
    assert cursor.default_cursor_secret() == repository_defaults.cursor_secret == b"rotated"
    configure_repositories(KeelSettings(repository={"max_page_size": 12, "default_page_size": 6}))
    assert (repository_defaults.max_page_size, repository_defaults.default_page_size) == (12, 6)
    assert repository_defaults.cursor_secret == DEVELOPMENT_SECRET == DEV_CURSOR_SECRET.encode()
    assert SqlAlchemyRepository.max_page_size is None
    assert SqlAlchemyRepository.default_page_size is None


@pytest.mark.parametrize(
    "changes",
    [{"max_page_size": 0}, {"default_page_size": 0}, {"default_page_size": 2000}, {"cursor_secret": ""}],
)
def test_refused_defaults_change_nothing(changes: dict[str, Any]) -> None:
    """Sizes below 1, a default above the maximum or an empty secret are ConfigurationErrors; the defaults stay."""
    before = repository_defaults.copy()
    with pytest.raises(ConfigurationError):
        repository_defaults.replace(**changes)
    assert repository_defaults == before


def test_production_defaults_refuse_the_development_secret() -> None:
    """replace(production=True) refuses the public secret, as configure_repositories does for KEEL_ENV=production."""
    with pytest.raises(ConfigurationError):
        repository_defaults.replace(cursor_secret=DEV_CURSOR_SECRET, production=True)
    with pytest.raises(ConfigurationError):
        configure_repositories(KeelSettings(env="production"))
    assert repository_defaults.cursor_secret == DEVELOPMENT_SECRET


def test_the_cursor_key_is_derived_once_per_secret() -> None:
    """Signing and checking many cursors under one secret derives its HMAC key once."""
    cursor._key.cache_clear()
    state = cursor.CursorState((1,), False, "f")
    for _ in range(5):
        token = cursor.encode_cursor(state, b"one secret")
        cursor._mac(b"one secret", token.encode())
    cursor.encode_cursor(state, b"another secret")
    info = cursor._key.cache_info()
    assert (info.misses, info.currsize) == (2, 2)


def test_transient_errors_have_one_definition() -> None:
    """keel.container and keel.infrastructure.database re-export cross_cutting.error's tuple and predicate."""
    import keel.container
    import keel.cross_cutting.error as errors
    import keel.infrastructure.database as database

    assert keel.container.TRANSIENT_ERRORS is errors.TRANSIENT_ERRORS
    assert database.is_transient is errors.is_transient
    for error_type in errors.TRANSIENT_ERRORS:
        assert errors.is_transient(error_type("x"))
    assert not errors.is_transient(ConfigurationError("x"))
