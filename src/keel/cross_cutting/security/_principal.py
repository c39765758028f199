"""``Principal``: who is acting, held in a context variable for the task and its children."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import pydantic


class Principal(pydantic.BaseModel):
    """An authenticated caller: a user, or a service acting on its own behalf.

    Frozen and JSON-serialisable, so it travels in message metadata (outbox
    rows, Pub/Sub attributes, event store metadata) and a consumer can act as
    the original caller.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    id: str = pydantic.Field(min_length=1, max_length=255)
    roles: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()

    def has(self, *permissions: str) -> bool:
        """Whether this principal holds every one of ``permissions``."""
        return all(permission in self.permissions for permission in permissions)


_principal: ContextVar[Principal | None] = ContextVar("keel_principal", default=None)


def current_principal() -> Principal | None:
    """The principal this task acts as, or ``None`` (anonymous)."""
    return _principal.get()


@contextmanager
def as_principal(principal: Principal | None) -> Iterator[Principal | None]:
    """Act as ``principal`` for the block (``None``: anonymous); the previous one is restored after."""
    token = _principal.set(principal)
    try:
        yield principal
    finally:
        _principal.reset(token)
