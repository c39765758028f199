"""Repository settings (page sizes, the cursor secret): where each value comes from.

Three places can set them, most specific first:

1. the repository's own subclass (``max_page_size = 10_000`` in its body);
2. the session it works on: ``create_session_factory(engine,
   repository_settings=...)`` (the container's factory) puts a
   :class:`~keel.config.RepositorySettings` in every session's ``info``, so
   two applications in one process keep their own;
   (the in-memory twin's store plays that part:
   ``InMemoryStore(repository_settings=...)``);
3. the process-wide defaults, :data:`repository_defaults`, for sessions from
   factories built by hand and stores built without settings.

:func:`resolve_setting` applies that order, with ``None`` meaning "not set
here" (a ``0`` is a value, not a gap). :func:`configure_repositories` and
:func:`set_default_cursor_secret` change the process-wide defaults; nothing
else in keel writes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from keel.config import DEV_CURSOR_SECRET, KeelSettings, RepositorySettings
from keel.cross_cutting.error import ConfigurationError

#: ``session.info`` key: the :class:`~keel.config.RepositorySettings` repositories on the session use.
REPOSITORY_SETTINGS = "keel.repository_settings"
#: ``session.info`` key that turns the soft-delete filter on (see ``keel.infrastructure.repository.soft_delete``)
#: and marks the session as keel's (``keel.infrastructure.database._keel_session``).
from keel.infrastructure.database._keel_session import HIDE_SOFT_DELETED as HIDE_SOFT_DELETED  # noqa: E402

#: :data:`keel.config.DEV_CURSOR_SECRET` as the bytes cursors are signed with.
DEVELOPMENT_SECRET = DEV_CURSOR_SECRET.encode()
#: The knobs :func:`resolve_setting` knows.
SETTING_NAMES = ("max_page_size", "default_page_size", "cursor_secret")

SecretLike = str | bytes | SecretStr


def secret_bytes(secret: SecretLike) -> bytes:
    """The raw secret behind a str, bytes or pydantic ``SecretStr``."""
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not raw:
        raise ConfigurationError("the cursor secret must not be empty")
    return raw


def check_cursor_secret(secret: bytes, *, production: bool) -> None:
    """Refuse the public development cursor secret in production.

    Elsewhere it is fine to start with; the warning comes when a cursor is
    actually signed with it (``keel.infrastructure.repository.cursor``), so
    a service that never pages does not log it on every start.
    """
    if production and secret == DEVELOPMENT_SECRET:
        raise ConfigurationError(
            "KEEL_REPOSITORY__CURSOR_SECRET is the development default; set a random secret in production",
            variables=["KEEL_REPOSITORY__CURSOR_SECRET"],
        )


def checked_repository_settings(settings: KeelSettings | RepositorySettings) -> RepositorySettings:
    """The repository section of ``settings``, with the cursor secret checked.

    The public development secret is refused when ``settings`` says
    ``KEEL_ENV=production`` (any spelling of it); elsewhere it is allowed,
    and the first cursor signed with it logs a warning (a bare
    ``RepositorySettings`` does not know the environment: no check).
    """
    if isinstance(settings, RepositorySettings):
        return settings
    check_cursor_secret(secret_bytes(settings.repository.cursor_secret), production=settings.is_production)
    return settings.repository


@dataclass(slots=True)
class RepositoryDefaults:
    """The process-wide fallback settings; keel keeps one, :data:`repository_defaults`.

    Change it with :meth:`replace` or :meth:`configure` (both check what
    they are given), not by assigning attributes.
    """

    max_page_size: int = RepositorySettings.model_fields["max_page_size"].default
    default_page_size: int = RepositorySettings.model_fields["default_page_size"].default
    cursor_secret: bytes = DEVELOPMENT_SECRET

    def replace(
        self,
        *,
        max_page_size: int | None = None,
        default_page_size: int | None = None,
        cursor_secret: SecretLike | None = None,
        production: bool = False,
    ) -> None:
        """Change the given defaults, keep the others; nothing changes if a value is refused.

        With ``production=True`` the development cursor secret is refused.
        """
        maximum = self.max_page_size if max_page_size is None else max_page_size
        default = self.default_page_size if default_page_size is None else default_page_size
        secret = self.cursor_secret if cursor_secret is None else secret_bytes(cursor_secret)
        if maximum < 1 or default < 1 or default > maximum:
            raise ConfigurationError(
                f"page sizes must be at least 1, the default at most the maximum "
                f"(default_page_size={default}, max_page_size={maximum})"
            )
        if cursor_secret is not None:
            check_cursor_secret(secret, production=production)
        self.max_page_size, self.default_page_size, self.cursor_secret = maximum, default, secret

    def configure(self, settings: KeelSettings | RepositorySettings) -> None:
        """Take page sizes and the cursor secret from ``settings``.

        Given whole ``KeelSettings`` under ``KEEL_ENV=production``, the
        development cursor secret is refused.
        """
        production = isinstance(settings, KeelSettings) and settings.is_production
        section = settings.repository if isinstance(settings, KeelSettings) else settings
        self.replace(
            max_page_size=section.max_page_size,
            default_page_size=section.default_page_size,
            cursor_secret=section.cursor_secret,
            production=production,
        )

    def copy(self) -> RepositoryDefaults:
        """A detached copy (to restore later with :meth:`restore`, as test fixtures do)."""
        return dataclasses.replace(self)

    def restore(self, saved: RepositoryDefaults) -> None:
        """Put back the values of a :meth:`copy`."""
        self.max_page_size, self.default_page_size = saved.max_page_size, saved.default_page_size
        self.cursor_secret = saved.cursor_secret


#: The process-wide defaults (see the module docstring).
repository_defaults = RepositoryDefaults()


def resolve_setting(repository: object, name: str, session_info: Mapping[str, Any] | None, *, base: type) -> Any:
    """``name`` for ``repository``: its subclass, else the session's settings, else the process defaults.

    ``base`` is the library class whose own attributes are not a choice
    (``SqlAlchemyRepository``, ``InMemoryRepository``): the subclasses
    between it and ``repository``'s class are searched, nearest first. Only
    ``None`` means unset.
    """
    own = _own_setting(repository, name, base)
    if own is not None:
        return own
    if session_info is not None:
        configured = session_info.get(REPOSITORY_SETTINGS)
        if configured is not None:
            return getattr(configured, name)
    return getattr(repository_defaults, name)


def resolve_cursor_secret(repository: object, session_info: Mapping[str, Any] | None, *, base: type) -> bytes:
    """The bytes ``repository`` signs and checks cursors with (same order as :func:`resolve_setting`)."""
    return secret_bytes(resolve_setting(repository, "cursor_secret", session_info, base=base))


def _own_setting(repository: object, name: str, base: type) -> Any:
    own = getattr(repository, "__dict__", {}).get(name)
    if own is not None:
        return own
    for klass in type(repository).__mro__:
        if klass is base or klass is object:
            break
        own = klass.__dict__.get(name)
        if own is not None:
            return own
    return None


def set_default_cursor_secret(secret: SecretLike, *, production: bool = False) -> None:
    """Set the process-wide secret: for repositories whose class and session factory set none.

    With ``production=True`` the development default is refused outright.
    """
    repository_defaults.replace(cursor_secret=secret, production=production)


def default_cursor_secret() -> bytes:
    """The process-wide cursor secret."""
    return repository_defaults.cursor_secret


def configure_repositories(settings: KeelSettings | RepositorySettings) -> None:
    """Set the process-wide page sizes and cursor secret (the fallback; see the module docstring).

    In ``KEEL_ENV=production`` the development cursor secret is refused.
    A repository subclass that sets its own ``max_page_size``,
    ``default_page_size`` or ``cursor_secret`` keeps it, and sessions whose
    factory carries settings keep theirs.
    """
    repository_defaults.configure(settings)
