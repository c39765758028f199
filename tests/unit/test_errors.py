"""keel's error hierarchy: codes, messages, details, problem documents; what translation leaves alone."""

from __future__ import annotations

import json

from sqlalchemy import exc as sa_exc

import keel
from keel import (
    AuthorizationError,
    CacheError,
    CheckViolationError,
    ConcurrencyError,
    ConfigurationError,
    ConflictError,
    ConstraintViolationError,
    DatabaseError,
    DatabaseUnavailableError,
    DomainError,
    ForeignKeyViolationError,
    InfrastructureError,
    KeelError,
    NotFoundError,
    NotNullViolationError,
    PublishError,
    UnitOfWorkError,
    ValidationError,
)
from keel.infrastructure.database import is_transient, translate_db_error

#: Codes are part of the API (clients match on them): changing one is a breaking change.
STABLE_CODES = {
    KeelError: "keel_error",
    DomainError: "domain_error",
    NotFoundError: "not_found",
    ConcurrencyError: "concurrency_conflict",
    ConflictError: "conflict",
    ConstraintViolationError: "constraint_violation",
    CheckViolationError: "check_violation",
    NotNullViolationError: "not_null_violation",
    ForeignKeyViolationError: "foreign_key_violation",
    ValidationError: "validation_error",
    AuthorizationError: "authorization_denied",
    UnitOfWorkError: "unit_of_work_error",
    ConfigurationError: "configuration_error",
    InfrastructureError: "infrastructure_error",
    DatabaseError: "database_error",
    DatabaseUnavailableError: "database_unavailable",
    PublishError: "publish_error",
    CacheError: "cache_error",
}


def test_error_codes_are_stable_and_unique() -> None:
    """Each error class keeps its documented code, and no two classes share one."""
    assert {cls: cls.code for cls in STABLE_CODES} == STABLE_CODES
    assert len(set(STABLE_CODES.values())) == len(STABLE_CODES)


def test_every_public_error_is_in_the_hierarchy() -> None:
    """Every exception keel exports derives from KeelError, split into domain and infrastructure errors."""
    exported = {getattr(keel, name) for name in keel.__all__}
    errors = {obj for obj in exported if isinstance(obj, type) and issubclass(obj, BaseException)}
    assert set(STABLE_CODES) <= errors
    for cls in errors:
        assert issubclass(cls, KeelError), f"{cls.__name__} is exported but is not a KeelError"
        parent = cls.__mro__[1]
        assert cls is KeelError or cls.code != getattr(parent, "code", None), f"{cls.__name__} needs a code of its own"
    assert issubclass(NotFoundError, DomainError)
    for violation in (ConflictError, CheckViolationError, NotNullViolationError, ForeignKeyViolationError):
        assert issubclass(violation, ConstraintViolationError)
    assert issubclass(DatabaseUnavailableError, InfrastructureError)
    assert not issubclass(InfrastructureError, DomainError)


def test_str_shows_the_code_then_the_message() -> None:
    """str() is "[code] message"; without a message, the class docstring's first line is used."""
    assert str(NotFoundError(entity="Product", id="LAMP")) == "[not_found] Product 'LAMP' not found"
    assert str(ConflictError()) == "[conflict] The change conflicts with existing data (for example a unique key)."
    assert str(KeelError("plain")) == "[keel_error] plain"


def test_errors_carry_structured_json_ready_details() -> None:
    """Entity, id and version are attributes and details; to_dict() serialises as JSON."""
    error = ConcurrencyError(entity="Product", id=("LAMP", 2), version=3)
    assert (error.entity, error.id, error.version) == ("Product", ("LAMP", 2), 3)
    assert error.to_dict() == {
        "code": "concurrency_conflict",
        "message": "Product ('LAMP', 2) was changed by someone else (held version 3)",
        "details": {"entity": "Product", "id": ["LAMP", 2], "version": 3},
    }
    assert json.loads(json.dumps(error.to_dict())) == error.to_dict()
    invalid = ValidationError("bad", errors=[{"loc": ["qty"], "msg": "must be > 0", "type": "greater_than"}])
    assert invalid.details == {"errors": invalid.errors}
    assert "ValidationError(code='validation_error'" in repr(invalid)


def test_to_problem_gives_rfc_9457_members_without_diagnostics() -> None:
    """to_problem() has type, title, status, detail, instance, code and details; diagnostics stay out."""
    error = ConflictError(
        "a row with the same t.code already exists", constraint="uq_t_code", table="t", columns=["code"]
    )
    error.diagnostics["sqlstate"] = "23505"
    assert error.to_problem(409, instance="/things") == {
        "type": "urn:keel:problem:conflict",
        "title": "The change conflicts with existing data (for example a unique key).",
        "status": 409,
        "detail": "a row with the same t.code already exists",
        "instance": "/things",
        "code": "conflict",
        "details": {"constraint": "uq_t_code", "table": "t", "columns": ["code"]},
    }
    assert "23505" in repr(error)
    assert "23505" not in str(error) + json.dumps(error.to_dict())
    assert UnitOfWorkError("closed").to_problem() == {
        "type": "urn:keel:problem:unit_of_work_error",
        "title": UnitOfWorkError.default_message(),
        "detail": "closed",
        "code": "unit_of_work_error",
    }


def test_what_is_not_a_database_error_is_left_alone() -> None:
    """translate_db_error returns None for foreign exceptions and keel errors unchanged."""
    assert translate_db_error(ValueError("x")) is None
    not_found = NotFoundError(entity="Product", id=1)
    assert translate_db_error(not_found) is not_found
    wrapped = sa_exc.StatementError("bind failed", "SELECT 1", {}, not_found)
    assert translate_db_error(wrapped) is not_found
    assert isinstance(translate_db_error(sa_exc.TimeoutError()), DatabaseUnavailableError)
    assert not is_transient(not_found)
