"""``JwtAuthenticator``: a bearer token (RFC 6750) verified with PyJWT, turned into a :class:`Principal`.

A plain callable ``(authorization_header) -> Principal | None``, so any entry
point can use it: an HTTP dependency passes the ``Authorization`` header, a
consumer an attribute. ``None`` (no header) means anonymous; a header that is
there but does not verify is an :class:`keel.AuthenticationError` whose
``details["reason"]`` says why, without the token.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import SecretStr

from keel.cross_cutting.security._principal import Principal
from keel.domain.errors import AuthenticationError, ConfigurationError

#: Claims a token must carry unless told otherwise.
DEFAULT_REQUIRED_CLAIMS = ("exp", "sub")


class JwtAuthenticator:
    """Verifies ``Authorization: Bearer <jwt>`` and builds the principal from its claims.

    Args:
        key: the HMAC secret (``str``, ``bytes`` or ``SecretStr``) or the public
            key for RS*/ES*/EdDSA tokens; or a ``jwt.PyJWKClient`` for an
            identity provider's JWKS endpoint (the key is chosen by the
            token's ``kid``; the client caches keys).
        algorithms: accepted algorithms; required, never taken from the token.
        audience: the ``aud`` the token must carry (checked when given).
        issuer: the ``iss`` the token must carry (checked when given).
        leeway: seconds of clock skew allowed on ``exp``/``nbf``/``iat``.
        subject_claim: the claim giving :attr:`Principal.id`.
        roles_claim: a list (or a space-separated string) of roles.
        permission_claims: claims holding permissions, merged: ``permissions``
            (a list, as Auth0 issues) and OAuth 2's ``scope`` (space-separated).
        require: claims that must be present.
    """

    def __init__(
        self,
        key: str | bytes | SecretStr | Any,
        *,
        algorithms: Sequence[str],
        audience: str | Sequence[str] | None = None,
        issuer: str | None = None,
        leeway: float = 0,
        subject_claim: str = "sub",
        roles_claim: str = "roles",
        permission_claims: Sequence[str] = ("permissions", "scope"),
        require: Sequence[str] = DEFAULT_REQUIRED_CLAIMS,
    ) -> None:
        try:
            import jwt
        except ImportError:  # the `web` extra
            raise ConfigurationError("JwtAuthenticator needs PyJWT: pip install 'keel-framework[web]'") from None
        if not algorithms:
            raise ConfigurationError("JwtAuthenticator needs the algorithms to accept (e.g. ['RS256'])")
        self._jwt = jwt
        self._key = key.get_secret_value() if isinstance(key, SecretStr) else key
        self.algorithms = list(algorithms)
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        self.subject_claim = subject_claim
        self.roles_claim = roles_claim
        self.permission_claims = tuple(permission_claims)
        self.require = list(require)

    def __repr__(self) -> str:  # never the key
        return f"JwtAuthenticator(algorithms={self.algorithms!r}, audience={self.audience!r}, issuer={self.issuer!r})"

    def __call__(self, authorization_header: str | None) -> Principal | None:
        """The principal the header's token names; ``None`` without a header."""
        if authorization_header is None or not authorization_header.strip():
            return None
        scheme, _, token = authorization_header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise AuthenticationError("the Authorization header is not 'Bearer <token>'", reason="malformed")
        claims = self.verify(token)
        subject = claims.get(self.subject_claim)
        if not isinstance(subject, str) or not subject:
            raise AuthenticationError(f"the token has no {self.subject_claim!r} claim", reason="invalid_token")
        permissions: set[str] = set()
        for claim in self.permission_claims:
            permissions.update(_names(claims.get(claim)))
        return Principal(
            id=subject[:255], roles=frozenset(_names(claims.get(self.roles_claim))), permissions=frozenset(permissions)
        )

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims once its signature, expiry, audience and issuer check out."""
        jwt = self._jwt
        try:
            key = self._key
            if isinstance(key, jwt.PyJWKClient):
                key = key.get_signing_key_from_jwt(token).key
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": self.require, "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("the token has expired", reason="expired") from None
        except jwt.InvalidAudienceError:
            raise AuthenticationError("the token is not meant for this service", reason="invalid_audience") from None
        except jwt.InvalidIssuerError:
            raise AuthenticationError("the token's issuer is not trusted", reason="invalid_issuer") from None
        except jwt.InvalidSignatureError:
            raise AuthenticationError("the token's signature does not verify", reason="invalid_signature") from None
        except jwt.PyJWKClientError:
            raise AuthenticationError("no signing key matches the token", reason="invalid_signature") from None
        except jwt.InvalidTokenError as exc:
            # PyJWT's messages name claims, never values; the class says enough.
            raise AuthenticationError(f"the token is invalid ({type(exc).__name__})", reason="invalid_token") from None
        return claims


def _names(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str) and item]
    return ()
