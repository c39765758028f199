"""The command being handled: a stable id for every attempt, held in a context variable.

The bus sets it around a command's handling (every retry sees the same id)
and clears it while the command's events are handled. A commit participant
(:mod:`keel.infrastructure.processed_commands`) records the id in the
handler's own transaction, so an attempt whose commit reached the database
but whose acknowledgement was lost is recognised when the bus retries it.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar, Token

from keel.domain.errors import ConflictError, ValidationError

#: Longest idempotency key accepted (the width of the record's key column).
MAX_KEY_LENGTH = 200


class CommandContext:
    """The command a task is handling right now."""

    __slots__ = ("_command_id", "command_type", "recorded")

    def __init__(self, command_id: str | None, command_type: str) -> None:
        self._command_id = command_id
        self.command_type = command_type
        #: Set once a transaction that recorded this command committed: the bus does not repeat it.
        self.recorded = False

    @property
    def command_id(self) -> str:
        """The caller's idempotency key, or a random id drawn on first use (most commands never need one)."""
        if self._command_id is None:
            self._command_id = uuid.uuid4().hex
        return self._command_id

    def __repr__(self) -> str:
        return f"CommandContext(command_id={self._command_id!r}, command_type={self.command_type!r})"


_current: ContextVar[CommandContext | None] = ContextVar("keel_current_command", default=None)


def current_command() -> CommandContext | None:
    """The command being handled in this task, or ``None`` (outside the bus, or in an event handler)."""
    return _current.get()


def set_current(context: CommandContext | None) -> Token[CommandContext | None]:
    """Make ``context`` the current command (``None``: no command) until :func:`reset_current`."""
    return _current.set(context)


def reset_current(token: Token[CommandContext | None]) -> None:
    """Undo the :func:`set_current` that returned ``token``."""
    _current.reset(token)


def new_context(command_type: str, idempotency_key: str | None) -> CommandContext:
    """A context for one ``bus.handle(command)`` call; the key, when given, is its id."""
    if idempotency_key is None:
        return CommandContext(None, command_type)
    if not isinstance(idempotency_key, str) or not idempotency_key.strip() or len(idempotency_key) > MAX_KEY_LENGTH:
        raise ValidationError(
            f"an idempotency key is a non-blank string of at most {MAX_KEY_LENGTH} characters",
            errors=[{"loc": ["idempotency_key"], "msg": "invalid idempotency key", "type": "value_error"}],
        )
    return CommandContext(idempotency_key, command_type)


class CommandAlreadyHandledError(ConflictError):
    """The command with this id was already applied, by an earlier attempt or request; not applied again.

    Its effects are committed exactly once. What it returned is not known
    here: read the state it produced (``details``: ``command_id``,
    ``command_type``, ``committed_at``).
    """

    code = "command_already_handled"
