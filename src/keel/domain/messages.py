"""Messages: commands ask for a change, domain events say one happened.

Both are frozen pydantic models. Constructing one from bad input raises
:class:`keel.ValidationError` (with pydantic's field errors in ``errors``), so
callers deal with one error type whatever the source of the input.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Self
from uuid import UUID, uuid4

import pydantic

from keel.domain.errors import ValidationError


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Message(pydantic.BaseModel):
    """Base of commands and events."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    #: Stable name used when the message is serialised (outbox, event store,
    #: Pub/Sub). Defaults to the class name; set it explicitly on classes
    #: whose name may change or collide with another context's.
    message_type: ClassVar[str]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "message_type" not in cls.__dict__:
            cls.message_type = cls.__name__

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except pydantic.ValidationError as exc:
            raise validation_error_from(exc, type(self).__name__) from exc

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate(obj, *args, **kwargs)
        except pydantic.ValidationError as exc:
            raise validation_error_from(exc, cls.__name__) from exc

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, *args: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate_json(json_data, *args, **kwargs)
        except pydantic.ValidationError as exc:
            raise validation_error_from(exc, cls.__name__) from exc


class Command(Message):
    """A request to change the system; handled by exactly one handler."""


class DomainEvent(Message):
    """Something that happened; handled by zero or more handlers.

    ``event_id`` and ``occurred_at`` (timezone-aware UTC) are filled in
    automatically.
    """

    event_id: UUID = pydantic.Field(default_factory=uuid4)
    occurred_at: datetime = pydantic.Field(default_factory=utcnow)


def validation_error_from(exc: pydantic.ValidationError, what: str) -> ValidationError:
    """Turn pydantic's error into keel's, keeping the field errors."""
    errors = [
        {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    fields = ", ".join(".".join(str(p) for p in e["loc"]) or what for e in errors)
    return ValidationError(f"invalid {what}: {fields}", errors=errors)
