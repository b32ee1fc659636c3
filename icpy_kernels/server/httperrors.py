"""The one HTTP error shape every handler answers with (REST, WebSocket handshake, unknown paths)."""

from __future__ import annotations

from typing import Any

from tornado import web

from ..errors import IcpyError

HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
              426: "upgrade_required"}
WEBSOCKET_VERSIONS = ("7", "8", "13")  # what tornado's handshake speaks


class JsonErrors(web.RequestHandler):
    """``write_error`` for every handler: ``{"error": {code, message, ...}}`` with the error's
    status, ``Allow`` on a 405; tornado's own HTML page never reaches a client."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, IcpyError):
            self.set_status(exc.http_status)
            body = exc.to_dict()
        elif isinstance(exc, web.HTTPError):
            body = {"code": HTTP_CODES.get(status_code, "http_error"),
                    "message": exc.log_message or self._reason}
        else:
            body = {"code": "internal_error", "message": self._reason}
        # send_error() cleared the headers set before the error: the ones it needs come back here.
        if self._status_code == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        if self._status_code == 426:
            self.set_header("Sec-WebSocket-Version", WEBSOCKET_VERSIONS[-1])
        self.error_headers()
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish({"error": body})

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, IcpyError) and value.http_status < 500:
            return  # a client's mistake, answered; not a server problem
        super().log_exception(typ, value, tb)

    def error_headers(self) -> None:
        """Extra headers of an error answer (a hook)."""

    def allowed_methods(self) -> list[str]:
        """The methods this handler implements (tornado's base ones answer 405)."""
        base = web.RequestHandler
        return [m for m in self.SUPPORTED_METHODS
                if getattr(type(self), m.lower(), None) is not getattr(base, m.lower(), None)]


def check_handshake(request: Any) -> None:
    """What tornado's WebSocketHandler checks before upgrading, raised as our errors (it would
    answer in plain text): a plain GET on /ws is a 400, an unknown protocol version a 426."""
    headers = request.headers
    if headers.get("Upgrade", "").lower() != "websocket":
        raise web.HTTPError(400, 'Not a WebSocket handshake: "Upgrade: websocket" is required')
    if "upgrade" not in [s.strip().lower() for s in headers.get("Connection", "").split(",")]:
        raise web.HTTPError(400, 'Not a WebSocket handshake: "Connection: Upgrade" is required')
    if headers.get("Sec-WebSocket-Version") not in WEBSOCKET_VERSIONS:
        raise web.HTTPError(426, "Sec-WebSocket-Version must be 13")
    if not headers.get("Sec-WebSocket-Key") or not headers.get("Host"):
        raise web.HTTPError(400, "Not a WebSocket handshake: Sec-WebSocket-Key and Host are required")
