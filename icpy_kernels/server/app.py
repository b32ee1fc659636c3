"""The Tornado application and the server's start/stop."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from typing import Any

from tornado import web
from tornado.netutil import bind_sockets

from ..config import Settings
from ..events.bus import EventBus
from ..events.hub import Hub
from ..history.store import HistoryStore
from ..history.store import default_path as default_history_path
from ..runtime.local import make_manager
from ..runtime.manager import SessionManager
from ..service import Service
from .gate import GatedHTTPServer
from .logs import log_request
from .rest import NotFoundHandler
from .rest import routes as rest_routes
from .rest_interactive import routes as interactive_routes
from .rest_sharing import routes as sharing_routes
from .websocket import ExecutionSocket

log = logging.getLogger(__name__)


def make_app(settings: Settings, manager: SessionManager, service: Service | None = None) -> web.Application:
    service = service or Service(manager)
    deps: dict[str, Any] = {"service": service, "settings": settings, "connections": set()}
    return web.Application(
        [
            (r"/ws", ExecutionSocket, deps),
            (r"/ws/enhanced", ExecutionSocket, deps),
            *rest_routes(deps),
            *interactive_routes(deps),
            *sharing_routes(deps),
        ],
        default_handler_class=NotFoundHandler,  # unrouted paths get a JSON 404
        default_handler_args=deps,
        websocket_ping_interval=settings.ws_ping_interval or None,
        websocket_ping_timeout=settings.ws_ping_interval or None,
        websocket_max_message_size=settings.max_message_size,
        log_function=log_request,  # tornado's own would log ?token= with every 4xx
    )


class Server:
    """The app, its listening sockets and its session manager, started and stopped together."""

    def __init__(self, settings: Settings, manager: SessionManager | None = None) -> None:
        self.settings = settings
        self.manager = manager or make_manager(settings)
        self.store = HistoryStore(settings.db or default_history_path(),
                                  max_rows=settings.history_max_rows, max_age=settings.history_max_age)
        bus = EventBus(settings.max_subscriptions_per_connection, settings.max_subscriptions)
        self.service = Service(self.manager, Hub(bus, store=self.store))
        self.app = make_app(settings, self.manager, self.service)
        self.http: GatedHTTPServer | None = None
        self.port = settings.port

    async def start(self) -> None:
        await self.store.open()  # an unusable --db fails the start, not the first execution
        sockets = bind_sockets(self.settings.port, self.settings.host, family=socket.AF_UNSPEC)
        self.port = sockets[0].getsockname()[1]
        self.http = GatedHTTPServer(self.app, self.settings)
        self.http.add_sockets(sockets)
        self.manager.start()

    @property
    def url(self) -> str:
        """The WebSocket URL without the token."""
        host = self.settings.host
        host = f"[{host}]" if ":" in host else host
        return f"ws://{host}:{self.port}/ws"

    async def stop(self) -> None:
        if self.http is not None:
            self.http.stop()
            self.http = None
        await self.manager.shutdown()
        await self.store.close()  # after the kernels: their final results are written first
        close = getattr(self.manager.provider, "close", None)
        if close is not None:
            close()  # the workspaces root, once every kernel is gone


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM, then shut every kernel down before returning."""
    server = Server(settings)
    await server.start()
    # stdout often ends up in a log other local users can read: a token the operator chose
    # (and may reuse) stays out of it; a generated one must be printed, or nobody could connect.
    if settings.token_generated:
        print(f"icpy_kernels serving on {server.url}?token={settings.token}", flush=True)
        print("(token generated for this run; set --token or ICPY_TOKEN to choose one)", flush=True)
    else:
        print(f"icpy_kernels serving on {server.url} (token from --token/ICPY_TOKEN)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("icpy_kernels: shutting down kernels...", flush=True)
    await server.stop()
