"""Test harness: a real server in a background thread, and a small WebSocket client."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import Any

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from icpy_kernels.config import Settings
from icpy_kernels.server.app import Server

TOKEN = "test-token-0123456789"


class ThreadedServer:
    """The real app on a real port, with its own event loop, so kernels can be shared by
    every test of a module (pytest-tornado gives each test a fresh loop)."""

    def __init__(self, **settings: Any) -> None:
        settings.setdefault("token", TOKEN)
        settings.setdefault("port", 0)
        settings.setdefault("db", ":memory:")  # never the user's real history file
        self.settings = Settings(**settings)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="icpy-test-server", daemon=True)
        self.server: Server | None = None

    def call(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> ThreadedServer:
        self.thread.start()

        async def start() -> None:
            self.server = Server(self.settings)
            await self.server.start()

        self.call(start())
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def manager(self):
        return self.server.manager

    @property
    def port(self) -> int:
        return self.server.port

    def url(self, path: str = "/ws", token: str | None = TOKEN) -> str:
        query = f"?token={token}" if token is not None else ""
        return f"ws://127.0.0.1:{self.port}{path}{query}"

    def sessions(self) -> dict[str, Any]:
        async def snapshot() -> dict[str, Any]:
            return {s["session_id"]: s for s in self.manager.list_sessions()}

        return self.call(snapshot())


def module_server(**settings: Any) -> Any:
    """A module-scoped ``server`` fixture: one ThreadedServer with these settings, shared by
    the module's tests and stopped (kernels and all) when the module ends."""

    @pytest.fixture(scope="module")
    def server() -> Any:
        srv = ThreadedServer(**settings).start()
        yield srv
        srv.stop()

    return server


class Client:
    """Reads every frame into a buffer; tests wait for the frames they care about."""

    def __init__(self, conn: WebSocketClientConnection) -> None:
        self.conn = conn
        self.buffer: list[dict[str, Any]] = []
        self.arrivals: list[float] = []
        self.welcome: dict[str, Any] = {}

    @classmethod
    async def connect(cls, url: str, headers: dict[str, str] | None = None) -> Client:
        conn = await websocket_connect(HTTPRequest(url, headers=headers or {}))
        client = cls(conn)
        client.welcome = await client.next()
        return client

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.conn.write_message(message if isinstance(message, str) else json.dumps(message))

    async def _read(self, timeout: float) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.conn.read_message(), timeout)
        if raw is None:
            raise ConnectionError("server closed the connection")
        return json.loads(raw)

    async def next(self, timeout: float = 30) -> dict[str, Any]:
        if self.buffer:
            self.arrivals.pop(0)
            return self.buffer.pop(0)
        return await self._read(timeout)

    async def wait_for(self, predicate: Any, timeout: float = 60) -> dict[str, Any]:
        """The first buffered or future frame matching ``predicate`` (others stay buffered)."""
        for i, message in enumerate(self.buffer):
            if predicate(message):
                self.arrivals.pop(i)
                return self.buffer.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            message = await self._read(max(0.01, deadline - time.monotonic()))
            if predicate(message):
                return message
            self.buffer.append(message)
            self.arrivals.append(time.monotonic())

    async def rpc(self, method: str, params: dict[str, Any] | None = None, *, wrapped: bool = False,
                  timeout: float = 60) -> dict[str, Any]:
        """One JSON-RPC call, bare or wrapped; returns the (unwrapped) response."""
        ident = "rpc-" + uuid.uuid4().hex
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": ident, "method": method}
        if params is not None:
            request["params"] = params
        if wrapped:
            await self.send({"type": "jsonrpc", "request": request})
            frame = await self.wait_for(lambda m: m.get("type") == "jsonrpc_response"
                                        and isinstance(m.get("response"), dict)
                                        and m["response"].get("id") == ident, timeout)
            return frame["response"]
        await self.send(request)
        return await self.wait_for(lambda m: "jsonrpc" in m and "method" not in m
                                   and m.get("id") == ident, timeout)

    async def ask(self, message: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        """A native request with a fresh ``request_id``; returns the frame echoing it."""
        rid = uuid.uuid4().hex
        await self.send({**message, "request_id": rid})
        return await self.wait_for(lambda m: m.get("request_id") == rid, timeout)

    async def execute(self, code: str, *, streaming: bool = False, timeout: float = 60, **fields: Any):
        """Run code; return (events for this execution in arrival order, result)."""
        execution_id = fields.pop("execution_id", None) or f"t-{time.monotonic_ns()}"
        await self.send({"type": "execute_streaming" if streaming else "execute", "code": code,
                         "execution_id": execution_id, **fields})
        seen: list[tuple[float, dict[str, Any]]] = []

        def mine(message: dict[str, Any]) -> bool:
            return message.get("execution_id") == execution_id

        while True:
            message = await self.wait_for(mine, timeout)
            seen.append((time.monotonic(), message))
            if message["type"] in ("execution_result", "error"):
                self.timeline = seen
                return [m for _, m in seen], message

    def close(self) -> None:
        self.conn.close()
