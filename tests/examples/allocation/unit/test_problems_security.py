"""A refused principal is 403 and a missing or bad credential 401, as problem details."""

from __future__ import annotations

from keel import AuthenticationError, AuthorizationError
from keel.ext.fastapi import status_for


def test_authorization_errors_are_403_and_authentication_errors_401() -> None:
    """The subclass (no valid credentials) is matched before its base (not allowed)."""
    assert status_for(AuthorizationError(required=["allocate"], missing=["allocate"], principal="bob")) == 403
    assert status_for(AuthenticationError(reason="expired")) == 401
    problem = AuthorizationError("nope").to_problem(403)
    assert (problem["status"], problem["code"]) == (403, "authorization_denied")
