"""The root of keel's error hierarchy and the errors the domain can raise.

They live in the domain layer because aggregates and handlers raise them and
the domain imports nothing else of keel; ``keel.cross_cutting.error`` adds the
infrastructure errors and re-exports the whole hierarchy.

Every error has a stable ``code`` (safe to match on, shown in ``str()``), a
human ``message`` and structured ``details`` (safe to serialise into an API
response: never a password, a raw driver message or a backend's internals
such as a SQLSTATE; those go to ``diagnostics``, for logs only).
"""

from __future__ import annotations

from typing import Any, ClassVar


class KeelError(Exception):
    """Base of every error keel raises on purpose."""

    code: ClassVar[str] = "keel_error"

    def __init__(self, message: str = "", /, **details: Any) -> None:
        self.message = message or self.default_message()
        self.details: dict[str, Any] = details
        #: Backend specifics for operators (a SQLSTATE, say): shown by ``repr()``, so
        #: they reach logs, but never by ``str()``, :meth:`to_dict` or :meth:`to_problem`.
        self.diagnostics: dict[str, Any] = {}
        super().__init__(self.message)

    @classmethod
    def default_message(cls) -> str:
        return cls.__doc__.strip().splitlines()[0] if cls.__doc__ else cls.__name__

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def __repr__(self) -> str:
        extra = f", diagnostics={self.diagnostics!r}" if self.diagnostics else ""
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, details={self.details!r}{extra})"

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON-ready data: ``code``, ``message`` and ``details``."""
        return {"code": self.code, "message": self.message, "details": self.details}

    def to_problem(self, status: int | None = None, *, instance: str | None = None) -> dict[str, Any]:
        """RFC 9457 problem details: ``type``, ``title``, ``status``, ``detail``, ``instance``.

        keel's ``code`` and the structured ``details`` are extension members;
        ``diagnostics`` never are. ``status`` and ``instance`` are left out when
        not given (the HTTP layer knows them, the error does not).
        """
        problem: dict[str, Any] = {
            "type": f"urn:keel:problem:{self.code}",
            "title": self.default_message(),
            "detail": self.message,
            "code": self.code,
        }
        if status is not None:
            problem["status"] = status
        if instance is not None:
            problem["instance"] = instance
        if self.details:
            problem["details"] = self.details
        return problem


class ConfigurationError(KeelError):
    """keel is set up wrongly: a setting, a mapping or the bus's wiring.

    ``details["variables"]`` names the settings involved, when there are any.
    Defined here, beside the root, so the service layer can raise it too.
    """

    code = "configuration_error"


class UnitOfWorkError(KeelError):
    """The unit of work was used out of order (re-entered, used while closed, or after a failed flush).

    Also raised for an entity that belongs to another open unit of work.
    """

    code = "unit_of_work_error"


class DomainError(KeelError):
    """A business rule refused the operation."""

    code = "domain_error"


class NotFoundError(DomainError):
    """The entity does not exist (or is soft-deleted)."""

    code = "not_found"

    def __init__(self, message: str = "", /, *, entity: str | None = None, id: Any = None, **details: Any) -> None:
        self.entity = entity
        self.id = id
        if not message and entity is not None:
            message = f"{entity} {id!r} not found"
        super().__init__(message, entity=entity, id=_jsonable(id), **details)


class ConcurrencyError(DomainError):
    """Someone else changed the data first; reload and retry."""

    code = "concurrency_conflict"

    def __init__(
        self,
        message: str = "",
        /,
        *,
        entity: str | None = None,
        id: Any = None,
        version: int | None = None,
        **details: Any,
    ) -> None:
        self.entity = entity
        self.id = id
        self.version = version
        if not message and entity is not None:
            message = f"{entity} {id!r} was changed by someone else (held version {version})"
        super().__init__(message, entity=entity, id=_jsonable(id), version=version, **details)


class ConstraintViolationError(DomainError):
    """The change breaks a rule the database enforces (a constraint).

    Base of the family, PEP 249's ``IntegrityError`` split by cause:
    :class:`ConflictError` (unique), :class:`CheckViolationError`,
    :class:`NotNullViolationError` and :class:`ForeignKeyViolationError`.
    ``constraint``, ``table`` and ``columns`` name what was violated where
    the backend tells (``details`` holds the same keys on every backend);
    the offending values are never included.
    """

    code = "constraint_violation"

    def __init__(
        self,
        message: str = "",
        /,
        *,
        constraint: str | None = None,
        table: str | None = None,
        columns: list[str] | tuple[str, ...] | None = None,
        **details: Any,
    ) -> None:
        self.constraint = constraint
        self.table = table
        self.columns = list(columns or ())
        if constraint is not None or table is not None or self.columns:
            details.update(constraint=constraint, table=table, columns=self.columns)
        super().__init__(message, **details)


class ConflictError(ConstraintViolationError):
    """The change conflicts with existing data (for example a unique key)."""

    code = "conflict"


class CheckViolationError(ConstraintViolationError):
    """A value breaks a CHECK constraint."""

    code = "check_violation"


class NotNullViolationError(ConstraintViolationError):
    """A required column was left empty (NOT NULL)."""

    code = "not_null_violation"


class ForeignKeyViolationError(ConstraintViolationError):
    """A reference points at a row that does not exist (or a referenced row is still in use)."""

    code = "foreign_key_violation"


class ValidationError(DomainError):
    """The input is invalid.

    ``errors`` is a list of ``{"loc": [...], "msg": ..., "type": ...}`` items,
    the shape pydantic uses, so one handler can render both.
    """

    code = "validation_error"

    def __init__(self, message: str = "", /, *, errors: list[dict[str, Any]] | None = None, **details: Any) -> None:
        self.errors = errors or []
        super().__init__(message, errors=self.errors, **details)


class AuthorizationError(DomainError):
    """The principal is not allowed to do this.

    ``details``: ``required`` (the permissions asked for), ``missing`` and
    ``principal`` (the id, or ``None`` for an anonymous caller), when the
    bus refused a command for a ``requires(...)`` declaration. HTTP: 403.
    """

    code = "authorization_denied"


class AuthenticationError(AuthorizationError):
    """The caller's identity could not be established (no credentials, or credentials that do not verify).

    A subclass of :class:`AuthorizationError`, so code that refuses on one
    refuses on both; an HTTP layer answers 401 for this one (check it first)
    and 403 for its base. ``details["reason"]`` is a stable word
    (``missing``, ``malformed``, ``expired``, ``invalid_audience``,
    ``invalid_issuer``, ``invalid_signature``, ``invalid_token``); the token
    itself is never included.
    """

    code = "authentication_failed"


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return str(value)
