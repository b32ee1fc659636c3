"""The listening side: accepting connections without letting unauthenticated ones starve the
server of file descriptors, and without a log line per failed accept.

A client that opens connections and never finishes its headers holds a descriptor each. Three
limits keep that bounded: a header timeout (``--header-timeout``, tornado's default is an
hour), a cap on connections that have not yet shown the token (``--max-pending-connections``;
past it the oldest such connection is closed, so a fresh client, which sends its headers at
once, still gets in), and a reserve of descriptors for kernels (``--fd-reserve``): past
``RLIMIT_NOFILE - reserve`` open descriptors new connections are closed at once. An accept that
fails anyway (EMFILE: kernels hold the rest) pauses accepting for a moment and is logged once
per interval: tornado's accept loop would retry at once, forever, logging each attempt.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import socket
import time
from typing import Any

from tornado import httputil
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream

from ..config import Settings
from .auth import token_in, token_valid
from .logs import Throttled

log = logging.getLogger(__name__)

ACCEPT_BATCH = 128  # connections taken per readiness event, as tornado does
ACCEPT_PAUSE = 0.5  # seconds without accepting after running out of descriptors
RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
FD_DIR = "/proc/self/fd"
FD_RECOUNT = 0.25  # seconds an open-descriptor count is trusted


def open_fds() -> int | None:
    try:
        return len(os.listdir(FD_DIR))
    except OSError:
        return None


def fd_ceiling(reserve: int) -> int | None:
    """How many descriptors connections may bring the process to (None: no limit known)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or reserve <= 0 or open_fds() is None:
        return None
    return max(soft - reserve, 0)


class GatedHTTPServer(HTTPServer):
    """tornado's HTTPServer with short header/body timeouts, its own accept loop, a cap on
    unauthenticated connections and a descriptor reserve."""

    def initialize(self, app: Any, settings: Settings) -> None:  # type: ignore[override]
        # tornado's Configurable calls initialize(), not __init__, with the constructor's arguments
        super().initialize(app, xheaders=False, max_body_size=settings.max_message_size,
                         idle_connection_timeout=settings.header_timeout or None,
                         body_timeout=settings.body_timeout or None)
        self.token = settings.token
        self.max_pending = settings.max_pending_connections
        self.ceiling = fd_ceiling(settings.fd_reserve)
        self.pending: dict[IOStream, None] = {}  # not yet authenticated, oldest first
        self._fds_estimate = 0  # open_fds() at the last count + accepts since
        self._counted_at = float("-inf")
        self._listening: dict[int, socket.socket] = {}
        self._throttled = Throttled(log)
        self.refused = 0  # connections closed by the reserve or the cap (for tests and bench)

    # -- accepting -------------------------------------------------------------------------
    def add_sockets(self, sockets: Any) -> None:
        for sock in sockets:
            self._listening[sock.fileno()] = sock
            IOLoop.current().add_handler(sock, self._accept_ready, IOLoop.READ)

    def stop(self) -> None:
        loop = IOLoop.current()
        for sock in self._listening.values():
            loop.remove_handler(sock)
            sock.close()
        self._listening.clear()

    def _accept_ready(self, sock: socket.socket, events: int) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                connection, address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno not in RESOURCE_ERRORS:
                    raise
                self._pause(sock, exc)
                return
            self._admit(connection, address)

    def _pause(self, sock: socket.socket, exc: OSError) -> None:
        """Stop watching the socket for a moment: it stays readable while the backlog holds a
        connection, so retrying at once would spin the loop."""
        self._throttled.warning("accept", "Cannot accept connections (%s); pausing accepts for %.1fs",
                                exc.strerror, ACCEPT_PAUSE)
        loop = IOLoop.current()
        loop.remove_handler(sock)

        def resume() -> None:
            if sock.fileno() in self._listening:
                loop.add_handler(sock, self._accept_ready, IOLoop.READ)

        loop.call_later(ACCEPT_PAUSE, resume)

    def _admit(self, connection: socket.socket, address: Any) -> None:
        if self._over_reserve():
            self.refused += 1
            self._throttled.warning("reserve", "Refusing connections: open files near the limit "
                                    "(RLIMIT_NOFILE - fd_reserve = %d)", self.ceiling)
            connection.close()
            return
        stream = IOStream(connection, max_buffer_size=self.max_buffer_size, read_chunk_size=self.read_chunk_size)
        self.handle_stream(stream, address)

    def _over_reserve(self) -> bool:
        if self.ceiling is None:
            return False
        # Counting lists /proc/self/fd (~0.25 ms at 900 fds): done near the ceiling, or when
        # the estimate is stale (kernels open descriptors we do not see, connections close).
        self._fds_estimate += 1
        now = time.monotonic()
        if self._fds_estimate >= self.ceiling or now - self._counted_at > FD_RECOUNT:
            self._fds_estimate, self._counted_at = open_fds() or 0, now
        return self._fds_estimate >= self.ceiling

    # -- the pre-authentication cap --------------------------------------------------------
    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        for old in [s for s in self.pending if s.closed()]:
            del self.pending[old]
        while len(self.pending) >= self.max_pending > 0:
            oldest = next(iter(self.pending))
            del self.pending[oldest]
            self.refused += 1
            self._throttled.warning("pending", "More than %d connections without a token: "
                                    "closing the oldest", self.max_pending)
            oldest.close()
        self.pending[stream] = None
        super().handle_stream(stream, address)

    def start_request(self, server_conn: Any, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        delegate = super().start_request(server_conn, request_conn)
        return _Watch(delegate, self, server_conn.stream)

    def authenticated(self, stream: IOStream) -> None:
        self.pending.pop(stream, None)


class _Watch(httputil.HTTPMessageDelegate):
    """Passes a request through; once its headers carry the right token, its connection is no
    longer counted as pending (for the rest of its life)."""

    def __init__(self, inner: httputil.HTTPMessageDelegate, server: GatedHTTPServer, stream: IOStream) -> None:
        self.inner = inner
        self.server = server
        self.stream = stream

    def headers_received(self, start_line: Any, headers: httputil.HTTPHeaders) -> Any:
        if self.stream in self.server.pending:
            query = start_line.path.partition("?")[2]
            if token_valid(token_in(headers, query), self.server.token):
                self.server.authenticated(self.stream)
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Any:
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        self.inner.finish()

    def on_connection_close(self) -> None:
        self.inner.on_connection_close()
