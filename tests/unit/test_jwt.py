"""JwtAuthenticator: a bearer token verified with PyJWT becomes a Principal; bad ones are AuthenticationError."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from pydantic import SecretStr

from keel import AuthenticationError, AuthorizationError, ConfigurationError
from keel.security import JwtAuthenticator, Principal

KEY = "a-test-signing-key-of-at-least-32-bytes!"


def token(key: str = KEY, **claims: Any) -> str:
    payload = {"sub": "alice", "aud": "allocation", "iss": "https://id.example", "exp": time.time() + 60, **claims}
    return jwt.encode(payload, key, algorithm="HS256")


def authenticator(**options: Any) -> JwtAuthenticator:
    return JwtAuthenticator(
        SecretStr(KEY), algorithms=["HS256"], audience="allocation", issuer="https://id.example", **options
    )


def test_a_good_token_gives_the_principal_with_roles_and_permissions() -> None:
    """sub is the id; roles from `roles`; permissions from `permissions` and the space-separated `scope`."""
    principal = authenticator()(
        "Bearer " + token(roles=["clerk"], permissions=["allocate"], scope="read:batches write:batches")
    )
    assert principal == Principal(
        id="alice",
        roles=frozenset({"clerk"}),
        permissions=frozenset({"allocate", "read:batches", "write:batches"}),
    )


def test_no_header_is_anonymous() -> None:
    """None or an empty header: no principal, no error."""
    assert authenticator()(None) is None
    assert authenticator()("  ") is None


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (lambda: "Bearer " + token(exp=time.time() - 10), "expired"),
        (lambda: "Bearer " + token(aud="billing"), "invalid_audience"),
        (lambda: "Bearer " + token(iss="https://evil.example"), "invalid_issuer"),
        (lambda: "Bearer " + token(key="another-key-another-key-another-key!"), "invalid_signature"),
        (lambda: "Bearer not-a-jwt", "invalid_token"),
        (lambda: "Basic dXNlcjpwYXNz", "malformed"),
        (lambda: "Bearer", "malformed"),
        (lambda: "Bearer " + token(sub=None), "invalid_token"),
    ],
)
def test_a_bad_token_is_an_authentication_error_with_a_reason(header: Any, reason: str) -> None:
    """Each failure has its stable reason; the token never appears in the error."""
    value = header()
    with pytest.raises(AuthenticationError) as caught:
        authenticator()(value)
    assert caught.value.details["reason"] == reason
    assert isinstance(caught.value, AuthorizationError)
    credentials = value.partition(" ")[2]
    if credentials:
        assert credentials not in str(caught.value) + repr(caught.value)


def test_the_signing_key_never_shows() -> None:
    """repr names the algorithms and audience only."""
    assert KEY not in repr(authenticator())


def test_algorithms_are_required() -> None:
    """Accepting whatever algorithm a token names is a known attack: the caller must list them."""
    with pytest.raises(ConfigurationError):
        JwtAuthenticator(KEY, algorithms=[])


def test_the_audience_is_optional() -> None:
    """Without an audience configured, a token's aud is not checked."""
    plain = JwtAuthenticator(KEY, algorithms=["HS256"])
    principal = plain("Bearer " + token(aud="anything"))
    assert principal is not None
    assert principal.id == "alice"
