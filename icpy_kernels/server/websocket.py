"""The WebSocket handler: authenticate, then shuttle frames to and from a Connection."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from typing import Any

from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..config import Settings
from ..errors import AuthError, CapacityError
from ..service import Service
from .auth import authenticate, origin_allowed
from .connection import Connection

log = logging.getLogger(__name__)


class ExecutionSocket(WebSocketHandler):
    connections: set[ExecutionSocket]

    def initialize(self, service: Service, settings: Settings, connections: set[Any]) -> None:
        self.service = service
        self.config = settings
        self.connections = connections
        self.connection: Connection | None = None
        self._outbox: deque[str] = deque()
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    async def get(self, *args: Any, **kwargs: Any) -> None:
        # Refuse before the upgrade, with a plain HTTP status a client can show.
        try:
            authenticate(self.request, self.config.token)
        except AuthError as exc:
            self.set_status(exc.http_status)
            self.finish({"error": exc.to_dict()})
            return
        if len(self.connections) >= self.config.max_connections:
            exc = CapacityError("Too many connections")
            self.set_status(exc.http_status)
            self.finish({"error": exc.to_dict()})
            return
        await super().get(*args, **kwargs)

    def check_origin(self, origin: str) -> bool:
        return origin_allowed(origin, self.request.host, self.config.allow_origin)

    def open(self, *args: Any, **kwargs: Any) -> None:
        # Small frames must leave at once: Nagle plus delayed ACKs costs ~40 ms a round trip.
        self.set_nodelay(True)
        self.connections.add(self)
        self.connection = Connection(self.service, self.send)
        self._writer = asyncio.create_task(self._write_forever())
        self.send(self.connection.welcome())

    def send(self, event: dict[str, Any]) -> None:
        """Enqueue; never blocks the caller (the kernel's IOPub reader among them)."""
        if self._writer is None or self._writer.done():
            return
        self._outbox.append(json.dumps(event))
        self._wakeup.set()

    async def _write_forever(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._outbox:
                    await self.write_message(self._outbox.popleft())
        except WebSocketClosedError:
            self._outbox.clear()

    async def on_message(self, message: str | bytes) -> None:
        if self.connection is not None:
            await self.connection.on_frame(message)

    def on_close(self) -> None:
        self.connections.discard(self)
        if self._writer is not None:
            self._writer.cancel()
        if self.connection is not None:
            asyncio.ensure_future(self.connection.close())


class HealthHandler(web.RequestHandler):
    def initialize(self, service: Service, settings: Settings, connections: set[Any]) -> None:
        self.manager = service.manager
        self.connections = connections

    def get(self) -> None:
        self.finish({
            "status": "ok",
            "sessions": len(self.manager.sessions),
            "connections": len(self.connections),
            "languages": self.manager.languages.available(),
        })
