"""Permissions (``requires``, ``authorize``), redaction and the correlation middleware, without a database."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from pydantic import BaseModel, Field, SecretBytes, SecretStr

from keel import AuthenticationError, AuthorizationError, Command, ConfigurationError, HandlerCall, MessageBus
from keel.security import (
    MASK,
    AuditEntry,
    AuditMiddleware,
    Principal,
    as_principal,
    authorize,
    correlate,
    redacted,
    required_permissions,
    requires,
)
from keel.service_layer.context import current_correlation_id, message_context

ALICE = Principal(id="alice", roles=frozenset({"clerk"}), permissions=frozenset({"allocate", "read"}))


class Allocate(Command):
    sku: str


class Credentials(BaseModel):
    user: str
    password: SecretStr


class Login(Command):
    credentials: Credentials
    history: list[Credentials] = []
    pin: str = Field(json_schema_extra={"secret": True})
    blob: SecretBytes = SecretBytes(b"x")
    tags: dict[str, SecretStr] = {}


@requires("allocate")
async def allocate(cmd: Allocate) -> str:
    return cmd.sku


@requires("admin")
@requires("allocate")
async def allocate_as_admin(cmd: Allocate) -> str:
    return cmd.sku


def bus(*handlers: tuple[type[Command], Any], middleware: tuple[Any, ...] = (authorize,)) -> MessageBus:
    return MessageBus(lambda: None, command_handlers=dict(handlers), middleware=middleware)  # type: ignore[arg-type,return-value]


async def test_requires_lets_a_principal_with_the_permissions_through() -> None:
    """The handler runs for a principal holding every permission."""
    with as_principal(ALICE):
        assert await bus((Allocate, allocate)).handle(Allocate(sku="LAMP")) == "LAMP"


async def test_requires_refuses_an_anonymous_caller_with_authentication_error() -> None:
    """No principal: AuthenticationError with reason missing, before the handler runs."""
    with pytest.raises(AuthenticationError) as caught:
        await bus((Allocate, allocate)).handle(Allocate(sku="LAMP"))
    assert caught.value.code == "authentication_failed"
    assert caught.value.details["reason"] == "missing"
    assert isinstance(caught.value, AuthorizationError)


async def test_requires_refuses_a_principal_missing_a_permission_and_names_it() -> None:
    """Stacked requires add up; the error names what is missing, never more than ids and names."""
    with as_principal(ALICE), pytest.raises(AuthorizationError) as caught:
        await bus((Allocate, allocate_as_admin)).handle(Allocate(sku="LAMP"))
    assert type(caught.value) is AuthorizationError
    assert caught.value.details == {"required": ["admin", "allocate"], "missing": ["admin"], "principal": "alice"}
    assert caught.value.to_problem(403)["status"] == 403
    assert required_permissions(allocate_as_admin) == {"admin", "allocate"}


async def test_the_guard_holds_without_the_middleware_and_on_direct_calls() -> None:
    """A bus built without authorize, or a direct call, still cannot skip the permission."""
    with pytest.raises(AuthenticationError):
        await bus((Allocate, allocate), middleware=()).handle(Allocate(sku="LAMP"))
    with pytest.raises(AuthenticationError):
        await allocate(Allocate(sku="LAMP"))
    with as_principal(ALICE):
        assert await allocate(Allocate(sku="LAMP")) == "LAMP"


async def test_the_middleware_refuses_before_the_handler_is_called() -> None:
    """authorize reads the mark of the handler the bus holds (partials unwrapped) and never calls it."""
    called: list[str] = []

    async def handler(cmd: Allocate, suffix: str) -> None:
        called.append(cmd.sku + suffix)

    handler.__keel_requires__ = frozenset({"allocate"})  # type: ignore[attr-defined]
    call = HandlerCall(Allocate(sku="LAMP"), "handler", "command", functools.partial(handler, suffix="!"))

    async def call_next() -> Any:
        return await handler(call.message, "!")  # type: ignore[arg-type]

    with pytest.raises(AuthenticationError):
        await authorize(call, call_next)
    assert called == []
    assert await authorize(HandlerCall(Allocate(sku="X"), "handler", "command"), lambda: _done()) == "done"


async def _done() -> str:
    return "done"


def test_requires_needs_permission_names() -> None:
    """requires() with no names, or blank ones, is a configuration mistake."""
    with pytest.raises(ConfigurationError):
        requires()
    with pytest.raises(ConfigurationError):
        requires(" ")
    with pytest.raises(ConfigurationError):
        requires("x")(42)  # type: ignore[type-var]


def test_principal_has_checks_every_permission() -> None:
    """has() is true only when all the permissions are held."""
    assert ALICE.has("allocate", "read")
    assert not ALICE.has("allocate", "admin")


def test_redaction_masks_secret_types_and_marked_fields_at_any_depth() -> None:
    """SecretStr/SecretBytes values and json_schema_extra={"secret": True} fields become the mask."""
    login = Login(
        credentials=Credentials(user="bob", password=SecretStr("hunter2")),
        history=[Credentials(user="old", password=SecretStr("p4ss"))],
        pin="1234",
        tags={"api": SecretStr("k3y")},
    )
    data = redacted(login)
    assert data == {
        "credentials": {"user": "bob", "password": MASK},
        "history": [{"user": "old", "password": MASK}],
        "pin": MASK,
        "blob": MASK,
        "tags": {"api": MASK},
    }
    for secret in ("hunter2", "p4ss", "1234", "k3y"):
        assert secret not in str(data)


async def test_correlate_starts_a_correlation_or_keeps_the_one_in_force() -> None:
    """Outside any context the call gets a fresh id; inside one it keeps it."""
    call = HandlerCall(Allocate(sku="X"), "h", "command")

    async def seen() -> str | None:
        return current_correlation_id()

    fresh = await correlate(call, seen)
    assert fresh
    assert current_correlation_id() is None
    with message_context(correlation_id="outer"):
        assert await correlate(call, seen) == "outer"


async def test_audit_middleware_passes_events_and_audit_off_buses_through() -> None:
    """Nothing is checked or written for an event, or for a bus built with audit=False."""

    class ExplodingLog:
        async def check(self) -> None:
            raise AssertionError("checked")

        async def record(self, entry: AuditEntry) -> None:
            raise AssertionError("recorded")

    middleware = AuditMiddleware(ExplodingLog())
    off = MessageBus(lambda: None, audit=False)  # type: ignore[arg-type,return-value]
    assert await middleware(HandlerCall(Allocate(sku="X"), "h", "command", None, off), _done) == "done"
    event_call = HandlerCall(Allocate(sku="X"), "h", "event")
    assert await middleware(event_call, _done) == "done"


async def test_a_log_that_fails_never_hides_the_commands_outcome(caplog: pytest.LogCaptureFixture) -> None:
    """A success stays a success (logged); a failure keeps its own error, with a note."""

    class BrokenLog:
        async def check(self) -> None:
            return None

        async def record(self, entry: AuditEntry) -> None:
            raise OSError("disk full")

    middleware = AuditMiddleware(BrokenLog())
    call = HandlerCall(Allocate(sku="X"), "h", "command")
    assert await middleware(call, _done) == "done"
    assert "could not write the audit record" in caplog.text

    async def boom() -> None:
        raise ValueError("handler failed")

    with pytest.raises(ValueError, match="handler failed") as caught:
        await middleware(call, boom)
    assert any("audit record" in note for note in caught.value.__notes__)
