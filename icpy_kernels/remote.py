"""The CLI's remote backend: a WebSocket client of ``icpy serve`` speaking ``execute_streaming``."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from .backends import Backend, CannotRun
from .errors import IcpyError
from .runtime.execution import Listener

CONNECT_TIMEOUT = 10.0
MAX_MESSAGE_SIZE = 64 * 1024 * 1024
EXECUTION_EVENTS = ("execution_started", "execution_update", "keepalive", "execution_result")


class RemoteError(IcpyError):
    """An ``error`` event from the server, re-raised with the server's code."""

    def __init__(self, event: dict[str, Any]) -> None:
        details = {k: v for k, v in event.items() if k not in ("type", "code", "message", "timestamp")}
        super().__init__(str(event.get("message", "server error")), **details)
        self.code = str(event.get("code", "internal_error"))


def websocket_url(url: str) -> str:
    """Accept ``ws(s)://``, ``http(s)://`` or a bare ``host:port``; default the path to ``/ws``."""
    if "://" not in url:
        url = "ws://" + url
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise CannotRun(f"--url must be a ws:// or http:// URL, not {url!r}")
    return urlunsplit((scheme, parts.netloc, parts.path or "/ws", parts.query, ""))


class RemoteBackend(Backend):
    def __init__(self, conn: WebSocketClientConnection, welcome: dict[str, Any]) -> None:
        self.conn = conn
        self.welcome = welcome
        self.languages = list(welcome.get("languages", []))
        self._running: str | None = None
        self._interrupting: str | None = None

    @classmethod
    async def connect(cls, url: str, token: str | None) -> RemoteBackend:
        target = websocket_url(url)
        # The token travels in a header rather than the URL, which servers and proxies log.
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = HTTPRequest(target, headers=headers, connect_timeout=CONNECT_TIMEOUT,
                              request_timeout=CONNECT_TIMEOUT)
        shown = urlunsplit(urlsplit(target)._replace(query=""))
        try:
            conn = await websocket_connect(request, max_message_size=MAX_MESSAGE_SIZE)
        except HTTPClientError as exc:
            reason = {401: "a token is required (--token or ICPY_TOKEN)", 403: "the token was refused"}
            raise CannotRun(f"{shown}: {reason.get(exc.code, exc)}") from exc
        except OSError as exc:
            raise CannotRun(f"cannot connect to {shown}: {exc.strerror or exc}") from exc
        welcome = await cls._read(conn)
        if welcome.get("type") != "welcome":
            conn.close()
            raise CannotRun(f"{shown}: expected a welcome message, got {welcome.get('type')!r}")
        return cls(conn, welcome)

    @staticmethod
    async def _read(conn: WebSocketClientConnection) -> dict[str, Any]:
        frame = await conn.read_message()
        if frame is None:
            raise CannotRun("the server closed the connection")
        return json.loads(frame)

    async def execute(self, params: dict[str, Any], listener: Listener) -> dict[str, Any]:
        execution_id = params.get("execution_id") or str(uuid.uuid4())
        self._running = execution_id
        await self.conn.write_message(json.dumps(
            {**params, "type": "execute_streaming", "execution_id": execution_id}))
        while True:
            event = await self._read(self.conn)
            kind, about = event.get("type"), event.get("execution_id")
            if kind == "error" and self._interrupting == execution_id and event.get("code") in (
                    "unknown_type", "execution_not_found"):
                # The interrupt could not be delivered (an older server, or the execution had
                # not started): stop; closing the socket ends the default session server-side.
                raise asyncio.CancelledError
            # An error without an execution_id can only be about the request just sent.
            if kind == "error" and about in (None, execution_id):
                raise RemoteError(event)
            if kind not in EXECUTION_EVENTS or about != execution_id:
                continue
            listener(event)
            if kind == "execution_result":
                return event

    async def interrupt(self) -> bool:
        """The ``interrupt`` message: the kernel stops the code and keeps its state."""
        if self._running is None:
            return False
        self._interrupting = self._running
        await self.conn.write_message(json.dumps({"type": "interrupt", "execution_id": self._running}))
        return True

    async def close(self) -> None:
        # The connection's default session (and its kernel) ends with the socket, server-side.
        self.conn.close()
