"""Token and Origin checks, shared by the WebSocket and REST handlers."""

from __future__ import annotations

import hmac
from urllib.parse import urlparse

from tornado.httputil import HTTPServerRequest

from ..errors import AuthError, ForbiddenError


def request_token(request: HTTPServerRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    values = request.query_arguments.get("token")
    return values[-1].decode("utf-8", "replace") if values else None


def authenticate(request: HTTPServerRequest, token: str) -> None:
    """401 without a token, 403 with a wrong one; compared in constant time."""
    given = request_token(request)
    if given is None:
        raise AuthError("A token is required (?token=... or Authorization: Bearer ...)")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise ForbiddenError("Invalid token")


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """No Origin (a non-browser client) passes; a browser must come from this host or the list."""
    if not origin:
        return True
    if "*" in allowed or origin in allowed:
        return True
    parsed = urlparse(origin)
    return bool(host) and parsed.netloc.lower() == (host or "").lower()
