"""The WebSocket handler: authenticate, then shuttle frames to and from a Connection."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
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

OUTBOX_CLOSE = 1008  # policy violation: the client does not read what it asks for
TRIM_AFTER = 16 << 20  # a connection that held this much in its outbox gives memory back when it ends


def release_memory() -> None:
    """Hand freed heap back to the OS. glibc raises its mmap threshold after freeing a large
    block, so later large frames come from the heap and stay in RSS once freed."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL(None).malloc_trim(0)


class ExecutionSocket(JsonErrors, WebSocketHandler):
    connections: set[ExecutionSocket]

    def initialize(self, service: Service, settings: Settings, connections: set[Any]) -> None:
        self.service = service
        self.config = settings
        self.connections = connections
        self.connection: Connection | None = None
        # (frame parts, size, counts against send_queue_size); parts may share a large head
        self._outbox: deque[tuple[tuple[str, str], int, bool]] = deque()
        self._bounded = 0  # broadcast/attached frames waiting (or being written)
        self._bytes = 0  # bytes waiting (or being written), bounded by max_outbox_bytes
        self._peak = 0
        self._shut = False  # refused to queue more (outbox overflow or socket closed)
        self._room = asyncio.Event()  # set while the outbox is under half its budget
        self._room.set()
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
        self.connection.room = self.room
        self._writer = asyncio.create_task(self._write_forever())
        self.send(self.connection.welcome())

    @property
    def _open(self) -> bool:
        return self._writer is not None and not self._shut

    def send(self, event: dict[str, Any]) -> None:
        """Enqueue; never blocks the caller (the kernel's IOPub reader among them).

        A frame that would take the outbox past ``max_outbox_bytes`` ends the connection
        instead (close code 1008): what it was owed cannot be held without bound, and a
        client reading this slowly cannot be served. An empty outbox takes any frame, so
        a single result larger than the budget still reaches a client that reads."""
        if not self._open:
            return
        parts = events.encode_parts(event)
        size = len(parts[0]) + len(parts[1])  # ASCII (json.dumps escapes): characters = bytes
        if self._bytes and self._bytes + size > self.config.max_outbox_bytes:
            self._overflow(size)
            return
        self._enqueue(parts, size, False)

    def send_bounded(self, event: dict[str, Any]) -> bool:
        """Enqueue broadcast/attached traffic; False (and nothing queued) once this client has
        ``send_queue_size`` such frames unwritten, or its outbox is over half its bytes:
        a reader that stalls costs bounded memory, and its own replies keep their room."""
        if not self._open:
            return True
        if self._bounded >= self.config.send_queue_size or not self._room.is_set():
            return False
        parts = events.encode_parts(event)
        self._bounded += 1
        self._enqueue(parts, len(parts[0]) + len(parts[1]), True)
        return True

    def _enqueue(self, parts: tuple[str, str], size: int, bounded: bool) -> None:
        self._outbox.append((parts, size, bounded))
        self._bytes += size
        self._peak = max(self._peak, self._bytes)
        if self._bytes > self.config.max_outbox_bytes // 2:
            self._room.clear()
        self._wakeup.set()

    def _overflow(self, size: int) -> None:
        limit = self.config.max_outbox_bytes
        log.warning("connection %s: %d bytes unread, a %d-byte frame would pass max_outbox_bytes (%d): closing",
                    self.connection.id if self.connection else "?", self._bytes, size, limit)
        self._shut = True  # nothing more is queued or written; tornado finishes the frame in flight
        self._writer.cancel()
        self._bytes -= sum(size for _, size, _ in self._outbox)
        self._outbox.clear()
        self._room.set()  # whoever waits for room finds the connection shut and sends nothing
        self.close(OUTBOX_CLOSE, f"outbox over max_outbox_bytes ({limit}): read what you ask for")

    async def room(self) -> None:
        """Until the outbox is under half its budget (at once when it is)."""
        await self._room.wait()

    async def _write_forever(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._outbox:
                    parts, size, bounded = self._outbox.popleft()
                    try:
                        # Joined only now: queued frames share a large result's one encoding.
                        await self.write_message(parts[0] + parts[1])
                    finally:
                        del parts
                        self._bounded -= bounded
                        self._bytes -= size
                        if self._bytes <= self.config.max_outbox_bytes // 2:
                            self._room.set()
        except WebSocketClosedError:
            self._outbox.clear()

    async def on_message(self, message: str | bytes) -> None:
        # Tornado reads the next frame only once this returns: while the client leaves
        # half its outbox unread, its requests wait in TCP (back-pressure), not in memory.
        await self._room.wait()
        if self.connection is not None:
            await self.connection.on_frame(message)

    def on_close(self) -> None:
        self.connections.discard(self)
        self._shut = True
        if self._writer is not None:
            self._writer.cancel()
        self._outbox.clear()
        self._room.set()  # whoever waits for room finds the connection closed and sends nothing
        if self.connection is not None:
            background(self.connection.close(), f"closing connection {self.connection.id}")
        if self._peak >= TRIM_AFTER:
            background(asyncio.to_thread(release_memory), "releasing memory")
