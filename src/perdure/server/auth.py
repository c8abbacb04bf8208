"""Who is asking: the bearer token of a request, and what its scope lets it do.

``read`` tokens may GET; ``admin`` tokens may do anything. Tokens are compared in
constant time (as SHA-256 digests, so neither their contents nor their lengths leak
through timing), against every configured token, without stopping at a match.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from .problems import ApiError

READ_METHODS = frozenset({"GET", "HEAD"})
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="perdure"'}


class Auth:
    """The server's tokens (token -> scope), or none at all with ``enabled=False``."""

    def __init__(self, tokens: Mapping[str, str], *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._digests = [(_digest(token), scope) for token, scope in tokens.items()]

    def scope_of(self, authorization: str | None) -> str:
        """The scope of the request's ``Authorization`` header. Raises ApiError 401
        (with ``WWW-Authenticate: Bearer``) when it is missing, not a bearer token, or
        not a token of this server. With auth disabled, everyone is admin."""
        if not self.enabled:
            return "admin"
        if not authorization:
            raise ApiError(
                401,
                "unauthorized",
                "this API needs a token: send the header 'Authorization: Bearer TOKEN'",
                _CHALLENGE,
            )
        kind, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if kind.lower() != "bearer" or not token:
            raise ApiError(
                401,
                "unauthorized",
                "the Authorization header must be 'Bearer TOKEN'",
                _CHALLENGE,
            )
        given = _digest(token)
        found: str | None = None
        for digest, scope in self._digests:
            if hmac.compare_digest(given, digest):
                found = scope  # keep comparing: the time spent must not say which
        if found is None:
            raise ApiError(
                401,
                "unauthorized",
                "unknown token: use one of the server's tokens ($PERDURE_API_TOKENS or "
                "its --tokens-file)",
                _CHALLENGE,
            )
        return found

    @staticmethod
    def allow(scope: str, method: str) -> None:
        """Raise ApiError 403 when a ``read`` token asks for anything but a read."""
        if scope != "admin" and method not in READ_METHODS:
            raise ApiError(
                403,
                "forbidden",
                f"this token may only read (scope {scope!r}); {method} needs an admin token",
            )


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
