"""keel errors as RFC 9457 problem details (``application/problem+json``).

Every error body has the RFC's members (``type``, ``title``, ``status``,
``detail``, ``instance``) plus keel's stable ``code``, and ``message`` (so
clients written for Cosmic Python's API, which read ``message``, keep
working). Validation problems list the field ``errors``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from keel import (
    ConcurrencyError,
    ConflictError,
    ConstraintViolationError,
    DatabaseUnavailableError,
    DomainError,
    KeelError,
    NotFoundError,
    ValidationError,
)

logger = logging.getLogger("examples.allocation.api")

PROBLEM_JSON = "application/problem+json"

#: Most specific first.
STATUS_BY_ERROR: tuple[tuple[type[KeelError], int], ...] = (
    (NotFoundError, 404),
    (ValidationError, 422),
    (ConcurrencyError, 409),
    (ConflictError, 409),
    (ConstraintViolationError, 422),  # check, not-null, foreign key: the data sent breaks a rule
    (DomainError, 400),
    (DatabaseUnavailableError, 503),
)


def status_for(exc: KeelError) -> int:
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            return status
    return 500


def problem(status: int, *, code: str, title: str, detail: str, instance: str, **extra: Any) -> JSONResponse:
    body = {
        "type": f"urn:keel:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
        "message": detail,
        **extra,
    }
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def keel_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KeelError)
    status = status_for(exc)
    if status >= 500:
        logger.error("%s %s failed: %r", request.method, request.url.path, exc)
        # An infrastructure error's details may describe the system; keep them in the log.
        return problem(
            status, code=exc.code, title=exc.default_message(), detail=exc.message, instance=request.url.path
        )
    extra: dict[str, Any] = {"errors": exc.errors} if isinstance(exc, ValidationError) else {}
    if not extra and exc.details:
        extra["details"] = exc.details
    return problem(
        status, code=exc.code, title=exc.default_message(), detail=exc.message, instance=request.url.path, **extra
    )


async def request_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own body/parameter validation, in the same shape as keel's ValidationError."""
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    summary = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
    return problem(
        422,
        code=ValidationError.code,
        title=ValidationError.default_message(),
        detail=f"invalid request: {summary}",
        instance=request.url.path,
        errors=errors,
    )


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("%s %s failed", request.method, request.url.path)
    return problem(
        500,
        code="internal_error",
        title="Internal Server Error",
        detail="the server failed to handle the request",
        instance=request.url.path,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Render keel errors, request validation errors and crashes as problem details."""
    app.add_exception_handler(KeelError, keel_error)
    app.add_exception_handler(RequestValidationError, request_validation_error)
    app.add_exception_handler(Exception, unexpected_error)
