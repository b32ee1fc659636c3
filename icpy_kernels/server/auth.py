"""Token, Host and Origin checks, shared by the WebSocket and REST handlers."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from tornado.httputil import HTTPServerRequest

from ..config import Settings
from ..errors import AuthError, ForbiddenError

LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")
DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def token_in(headers: Mapping[str, str], query: str) -> str | None:
    """The token a request carries: ``Authorization: Bearer|token T`` or the last ``?token=``."""
    scheme, _, value = headers.get("Authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    values = parse_qs(query, keep_blank_values=True).get("token")
    return values[-1] if values else None


def request_token(request: HTTPServerRequest) -> str | None:
    return token_in(request.headers, request.query)


def token_valid(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def authenticate(request: HTTPServerRequest, token: str) -> None:
    """401 without a token, 403 with a wrong one; compared in constant time."""
    given = request_token(request)
    if given is None:
        raise AuthError("A token is required (?token=... or Authorization: Bearer ...)")
    if not token_valid(given, token):
        raise ForbiddenError("Invalid token")


def _origin(value: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an origin (host lowercase, IPv6 unbracketed), None if unparsable."""
    try:
        parts = urlsplit(value.strip().rstrip("/"))
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if not scheme or not host:
        return None
    return scheme, host, port or DEFAULT_PORTS.get(scheme, 0)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Origins:
    """Where a browser page may talk to this server from, and under which host names.

    The Host header is never trusted: a DNS-rebinding page at ``http://evil.example:PORT`` whose
    name resolves to 127.0.0.1 sends ``Host`` and ``Origin`` that agree with each other.
    """

    local: frozenset[str]  # this server's names: allowed with its own port
    hosts: frozenset[str]  # names allowed in the Host header (local + --allow-origin's)
    extra: frozenset[tuple[str, str, int]]  # --allow-origin entries, exactly
    any: bool  # --allow-origin '*'

    @classmethod
    def of(cls, settings: Settings) -> Origins:
        local = set(LOCAL_NAMES)
        if settings.host not in WILDCARD_HOSTS:
            local.add(settings.host.strip("[]").lower())
        extra = {parsed for entry in settings.allow_origin if (parsed := _origin(entry))}
        return cls(frozenset(local), frozenset(local | {host for _, host, _ in extra}),
                   frozenset(extra), "*" in (e.strip() for e in settings.allow_origin))

    def origin_allowed(self, origin: str | None, port: int | None) -> bool:
        """No Origin (a non-browser client) passes; a browser page must be served by this
        server (one of its names, its port) or be listed in ``--allow-origin``."""
        if not origin or self.any:
            return True
        parsed = _origin(origin)  # "null" (sandboxed iframes, file://) does not parse: refused
        if parsed is None:
            return False
        scheme, host, origin_port = parsed
        return parsed in self.extra or (host in self.local and origin_port == port and port is not None)

    def host_allowed(self, host: str | None) -> bool:
        """An IP address, one of this server's names, or a name of ``--allow-origin``: a name
        that merely resolves here (DNS rebinding) is refused."""
        if self.any or not host:
            return True  # HTTP/1.0 without Host: no name to rebind
        name = host.strip().lower()
        if name.startswith("["):
            name = name[1:].split("]", 1)[0]
        elif name.count(":") == 1:
            name = name.split(":", 1)[0]
        return _is_ip(name) or name in self.hosts


def local_port(request: HTTPServerRequest) -> int | None:
    """The port this request arrived on (the listening socket's, whatever Host claims)."""
    try:
        return int(request.connection.stream.socket.getsockname()[1])  # type: ignore[union-attr]
    except (AttributeError, OSError, IndexError, TypeError):
        return None


def check_browser(request: HTTPServerRequest, settings: Settings) -> None:
    """403 for a Host name that is not this server's or an Origin that is not allowed."""
    origins = Origins.of(settings)
    if not origins.host_allowed(request.headers.get("Host")):
        raise ForbiddenError("Host not allowed (add the name with --allow-origin)")
    if not origins.origin_allowed(request.headers.get("Origin"), local_port(request)):
        raise ForbiddenError("Origin not allowed (see --allow-origin)")
