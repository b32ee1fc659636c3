"""The WebSocket handler: authenticate, then shuttle frames to and from a Connection."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..config import Settings
from ..errors import CapacityError, ForbiddenError
from ..protocol import events
from ..service import Service
from ..tasks import background
from .auth import Origins, authenticate, check_browser, local_port
from .connection import Connection
from .httperrors import JsonErrors, check_handshake

log = logging.getLogger(__name__)


class ExecutionSocket(JsonErrors, WebSocketHandler):
    connections: set[ExecutionSocket]

    def initialize(self, service: Service, settings: Settings, connections: set[Any]) -> None:
        self.service = service
        self.config = settings
        self.connections = connections
        self.connection: Connection | None = None
        self._outbox: deque[tuple[str, bool]] = deque()  # (frame, counts against send_queue_size)
        self._bounded = 0  # broadcast/attached frames waiting (or being written)
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    async def get(self, *args: Any, **kwargs: Any) -> None:
        # Refuse before the upgrade, with our JSON error (write_error) a client can show:
        # tornado's own refusals below would be plain text.
        check_browser(self.request, self.config)
        authenticate(self.request, self.config.token)
        check_handshake(self.request)
        if self._check_cross_origin(self.check_origin) is not None:  # e.g. Sec-Fetch-Site: cross-site
            raise ForbiddenError("Cross-origin WebSocket not allowed (see --allow-origin)")
        if len(self.connections) >= self.config.max_connections:
            raise CapacityError("Too many connections")
        await super().get(*args, **kwargs)

    def check_origin(self, origin: str) -> bool:
        return Origins.of(self.config).origin_allowed(origin, local_port(self.request))

    def open(self, *args: Any, **kwargs: Any) -> None:
        # Small frames must leave at once: Nagle plus delayed ACKs costs ~40 ms a round trip.
        self.set_nodelay(True)
        self.connections.add(self)
        self.connection = Connection(self.service, self.send)
        self.connection.send_bounded = self.send_bounded
        self._writer = asyncio.create_task(self._write_forever())
        self.send(self.connection.welcome())

    def send(self, event: dict[str, Any]) -> None:
        """Enqueue; never blocks the caller (the kernel's IOPub reader among them)."""
        if self._writer is None or self._writer.done():
            return
        self._outbox.append((events.encode(event), False))
        self._wakeup.set()

    def send_bounded(self, event: dict[str, Any]) -> bool:
        """Enqueue broadcast/attached traffic; False (and nothing queued) once this client has
        ``send_queue_size`` such frames unwritten: a reader that stalls costs bounded memory."""
        if self._writer is None or self._writer.done():
            return True
        if self._bounded >= self.config.send_queue_size:
            return False
        self._bounded += 1
        self._outbox.append((events.encode(event), True))
        self._wakeup.set()
        return True

    async def _write_forever(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._outbox:
                    frame, bounded = self._outbox.popleft()
                    try:
                        await self.write_message(frame)
                    finally:
                        self._bounded -= bounded
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
            background(self.connection.close(), f"closing connection {self.connection.id}")
