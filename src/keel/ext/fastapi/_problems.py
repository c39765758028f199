"""keel errors as RFC 9457 problem details (``application/problem+json``).

With :func:`install_problem_handlers`, every error response is ``application/problem+json``: keel's errors, request
validation, Starlette's own (unknown route 404, wrong method 405, a body it
cannot read 400) and crashes. The body has the RFC's members (``type``,
``title``, ``status``, ``detail``, ``instance``) plus keel's stable ``code``,
and ``message`` (so clients written for Cosmic Python's API, which read
``message``, keep working). Validation problems list the field ``errors``.
A 503 and a 409 for a concurrent change (the bus's retries ran out) carry
``Retry-After``: trying again later can succeed.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from keel import (
    AuthenticationError,
    AuthorizationError,
    ConcurrencyError,
    ConflictError,
    ConstraintViolationError,
    DatabaseUnavailableError,
    DomainError,
    KeelError,
    NotFoundError,
    ValidationError,
)

logger = logging.getLogger("keel.ext.fastapi")

PROBLEM_JSON = "application/problem+json"

#: Most specific first. An error class may also say its own status with a class attribute ``http_status``.
STATUS_BY_ERROR: tuple[tuple[type[KeelError], int], ...] = (
    (NotFoundError, 404),
    (ValidationError, 422),
    (ConcurrencyError, 409),
    (ConflictError, 409),
    (ConstraintViolationError, 422),  # check, not-null, foreign key: the data sent breaks a rule
    (AuthenticationError, 401),  # before its base: no (valid) credentials
    (AuthorizationError, 403),
    (DomainError, 400),
    (DatabaseUnavailableError, 503),
)


def status_for(exc: KeelError) -> int:
    """The HTTP status of a keel error: its ``http_status`` attribute, else the first match above, else 500."""
    own = getattr(exc, "http_status", None)
    if isinstance(own, int):
        return own
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            return status
    return 500


#: Seconds a client should wait before retrying a request that failed for a transient reason.
RETRY_AFTER = "1"
#: keel codes for the statuses Starlette raises itself.
HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


def problem(
    status: int,
    *,
    code: str,
    title: str,
    detail: str,
    instance: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response; ``message`` repeats ``detail`` for clients written for Cosmic Python's API."""
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
    headers = dict(headers or {})
    if status == 503 or code == ConcurrencyError.code:
        headers.setdefault("Retry-After", RETRY_AFTER)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers or None)


async def keel_error(request: Request, exc: Exception) -> JSONResponse:
    """A keel error as a problem; a 5xx keeps the error's details in the log, out of the response."""
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


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's and FastAPI's own errors (no such route, method not allowed, unreadable body)."""
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else title
    if status == 404:
        detail = "no such route"  # the path is in `instance` already
    elif status == 405:
        detail = f"{request.method} is not allowed here; allowed: {(exc.headers or {}).get('Allow', 'none')}"
    return problem(
        status,
        code=HTTP_CODES.get(status, f"http_{status}"),
        title=title,
        detail=detail,
        instance=request.url.path,
        headers=dict(exc.headers or {}),  # keeps `Allow` on a 405
    )


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A crash: logged with its traceback, answered with a 500 problem that shows nothing of it."""
    logger.exception("%s %s failed", request.method, request.url.path)
    return problem(
        500,
        code="internal_error",
        title="Internal Server Error",
        detail="the server failed to handle the request",
        instance=request.url.path,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Render keel errors, request validation errors, HTTP errors and crashes as problem details."""
    app.add_exception_handler(KeelError, keel_error)
    app.add_exception_handler(RequestValidationError, request_validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
