"""The REST API: thin JSON handlers over Service (same token, same execution path as /ws)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from typing import Any

from tornado import iostream, web

from ..config import Settings
from ..errors import IcpyError, InvalidJSON, PayloadTooLarge, ValidationError
from ..protocol import events, ids
from ..protocol.messages import ExecuteRequest, decode_json
from ..protocol.sharing import parse_history
from ..runtime.execution import Execution
from ..service import Service
from ..tasks import background
from .auth import authenticate, check_browser, request_token
from .httperrors import JsonErrors
from .openapi import document

log = logging.getLogger(__name__)

LINGER_SECONDS = 2.0  # after refusing a large body, read (and drop) what is in flight this long
NDJSON = "application/x-ndjson"
STREAM_VALUES = ("0", "1", "true", "false")
UNBOUNDED = 2**62  # tornado's max_body_size for a chunked body: ApiHandler counts it instead


@web.stream_request_body
class ApiHandler(JsonErrors):
    """Authenticates in ``prepare`` (before the body is read, so a too-large body gets a real
    413 rather than a dropped connection); every error leaves through one ``write_error``."""

    auth_required = True

    def initialize(self, service: Service, settings: Settings, connections: set[Any]) -> None:
        self.service = service
        self.config = settings
        self.connections = connections
        self._body = bytearray()
        self._linger = False
        self._too_large = False  # a chunked body went over max_message_size

    @property
    def client(self) -> str:
        """Who the sessions this request creates count against (``max_sessions_per_connection``):
        an HTTP request has no connection that outlives it, so it is the caller's address."""
        return f"rest:{self.request.remote_ip}"

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")

    def prepare(self) -> None:
        length = self.request.headers.get("Content-Length", "0")
        too_large = length.isdigit() and int(length) > self.config.max_message_size
        self._linger = too_large  # the unread body must not turn our answer into a reset
        check_browser(self.request, self.config)
        if self.auth_required:
            authenticate(self.request, self.config.token)
        if too_large:
            raise PayloadTooLarge(
                f"Body of {length} bytes exceeds max_message_size ({self.config.max_message_size})",
                limit=self.config.max_message_size,
            )
        if "chunked" in self.request.headers.get("Transfer-Encoding", "").lower():
            # tornado refuses a chunked body over max_body_size with a bare 400 and a closed
            # connection, leaving this handler waiting for a body that never comes. We take
            # the limit over: the rest of an oversized body is read and dropped (for at most
            # --body-timeout), then answered 413 like a sized one.
            self.request.connection.set_max_body_size(UNBOUNDED)

    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        if len(self._body) + len(chunk) > self.config.max_message_size:
            self._linger = self._too_large = True
            self._body.clear()
        if not self._too_large:
            self._body += chunk

    def queries(self, name: str) -> list[str]:
        """Every ``name`` of the query string, as sent. Not tornado's get_query_arguments: it
        strips blanks and turns control characters into spaces, so " 1" or "\\x16" would be
        validated as "1" or "" and the server would answer a value other than the one the
        client sent (and the OpenAPI document describes)."""
        return [self.decode_argument(v, name) for v in self.request.query_arguments.get(name, [])]

    def query(self, name: str) -> str | None:
        """The last ``name`` of the query string, as sent (None when absent)."""
        values = self.queries(name)
        return values[-1] if values else None

    def json_body(self) -> dict[str, Any]:
        if self._too_large:
            raise PayloadTooLarge(f"Body exceeds max_message_size ({self.config.max_message_size})",
                                  limit=self.config.max_message_size)
        if not self._body.strip():
            return {}
        value = decode_json(self._body, "Body")
        if not isinstance(value, dict):
            raise InvalidJSON("Body must be a JSON object")
        return value

    def error_headers(self) -> None:
        if self._linger:
            self.set_header("Connection", "close")

    def on_finish(self) -> None:
        if self._linger:
            # Take the socket from tornado before it reads the oversized body, let the answer
            # drain, then read and drop what the client still sends before closing: closing
            # on unread data would reset the connection and lose our 413.
            stream = self.request.connection.detach()
            background(_linger_close(stream), "closing a refused request's stream")


async def _linger_close(stream: iostream.IOStream) -> None:
    with contextlib.suppress(Exception):
        await stream.write(b"")
        stream.socket.shutdown(socket.SHUT_WR)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINGER_SECONDS
        while loop.time() < deadline:
            await asyncio.wait_for(stream.read_bytes(65536, partial=True), deadline - loop.time())
    stream.close()


class NotFoundHandler(ApiHandler):
    """Every unrouted path: a JSON 404 (no token needed to learn a path does not exist)."""

    auth_required = False
    # Checked before prepare(): any method tornado knows of a path that does not exist is a 404.
    SUPPORTED_METHODS = (*ApiHandler.SUPPORTED_METHODS, "TRACE", "CONNECT")

    def prepare(self) -> None:
        super().prepare()
        raise web.HTTPError(404, f"No route for {self.request.path}")


class OpenAPIHandler(ApiHandler):
    auth_required = False

    def get(self) -> None:
        self.finish(document())


class HealthHandler(ApiHandler):
    """``GET /api/health``: liveness for anyone; the counts, languages and sandbox with the token
    (how busy the server is and what confines its kernels is not for every local process)."""

    auth_required = False

    async def get(self) -> None:
        if request_token(self.request) is None:
            self.finish({"status": "ok"})
            return
        authenticate(self.request, self.config.token)  # a wrong token is a 403, not a quiet "ok"
        manager = self.service.manager
        policy = getattr(manager.provider, "policy", None)
        sandbox = await policy.describe() if policy is not None else {"mode": "off", "tier": None}
        sandbox.pop("workspace_root", None)  # no server paths, even with the token
        self.finish({
            "status": "ok",
            "sessions": len(manager.sessions),
            "connections": len(self.connections),
            "languages": manager.languages.available(),
            "sandbox": sandbox,
        })


class LanguagesHandler(ApiHandler):
    async def get(self) -> None:
        self.finish({"languages": await self.service.describe_languages()})


# -- executions ------------------------------------------------------------------------
class NdjsonHandler(ApiHandler):
    """Writes one JSON event per line as it happens; notices the client leaving."""

    gone = False

    async def write_line(self, event: dict[str, Any]) -> bool:
        """False when the client has left."""
        if not self._headers_written:
            self.set_header("Content-Type", NDJSON)
        try:
            self.write(events.encode(event) + "\n")
            await self.flush()
        except iostream.StreamClosedError:
            self.gone = True
        return not self.gone

    def on_connection_close(self) -> None:
        self.gone = True


class ExecuteHandler(NdjsonHandler):
    """``POST /api/execute``: the result as one JSON object, or ndjson events as they happen.

    Without ``session_id`` the code runs in a temporary session, shut down after the call;
    if the client leaves first, that execution is interrupted. A named session's execution
    runs on and stays readable at ``GET /api/executions/{id}``.
    """

    async def post(self) -> None:
        stream = self.wants_stream()  # a bad ?stream= is refused before anything runs
        request = self.service.parse_execute(self.json_body())
        self.caller = "rest-" + uuid.uuid4().hex[:12]
        self.request_spec = request
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.task: asyncio.Future[Execution] = asyncio.ensure_future(
            self.service.execute(request, self.caller, [queue.put_nowait], self.client))
        self.task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            if stream:
                await self._stream(queue)
            else:
                execution = await self.task
                self.finish(execution.result or execution.snapshot())
        finally:
            if self.task.done():
                await self.service.manager.close_connection(self.caller)

    def wants_stream(self) -> bool:
        stream = self.query("stream")
        if stream is None:
            stream = "0"
        elif stream not in STREAM_VALUES:  # as strict as the OpenAPI enum: a typo is not "no"
            raise ValidationError("'stream' must be one of 0, 1, true, false", field="stream")
        return NDJSON in self.request.headers.get("Accept", "") or stream in ("1", "true")

    async def _stream(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        started = False
        while True:
            # Session sends keepalives once the code runs; before that (queued, kernel
            # starting) this loop sends its own after the same silence.
            try:
                event = await asyncio.wait_for(queue.get(), None if started else self.config.keepalive_interval)
            except TimeoutError:
                event = {"type": "keepalive", "execution_id": self.request_spec.execution_id,
                         "timestamp": events.now()}
            if event is None:
                break
            started = started or event["type"] == "execution_started"
            if not await self.write_line(event):
                return  # the client left; on_connection_close decided the execution's fate
        exc = self.task.exception()
        if exc is not None:
            if not self._headers_written:
                raise exc
            if isinstance(exc, IcpyError):
                exc.details.setdefault("execution_id", self.request_spec.execution_id)
                await self.write_line(events.error(exc))
        self.finish()

    def on_connection_close(self) -> None:
        super().on_connection_close()
        task = getattr(self, "task", None)
        if task is not None and not task.done() and self.request_spec.session_id is None:
            background(self._abandon(self.request_spec, task), f"abandoning {self.request_spec.execution_id}")

    async def _abandon(self, request: ExecuteRequest, task: asyncio.Future[Execution]) -> None:
        """Interrupt the temporary session's execution, then shut that session down."""
        with contextlib.suppress(IcpyError):
            await self.service.interrupt(execution_id=request.execution_id)
        await asyncio.wait({task}, timeout=self.config.interrupt_grace)
        await self.service.manager.close_connection(self.caller)


class ExecutionHandler(ApiHandler):
    async def get(self, execution_id: str) -> None:
        # From memory, else from the history (so it survives a server restart).
        self.finish(await self.service.get_result(execution_id))


class ExecutionsHandler(ApiHandler):
    """``GET /api/executions?session_id=&language=&limit=&before=``: the history, newest first."""

    async def get(self) -> None:
        names = ("session_id", "language", "limit", "before")
        args = {n: value for n in names if (value := self.query(n)) is not None}
        self.finish(await self.service.history(parse_history(args)))


# -- sessions ----------------------------------------------------------------------------
class SessionsHandler(ApiHandler):
    def get(self) -> None:
        self.finish({"sessions": self.service.list_sessions()})

    async def post(self) -> None:
        session, created = await self.service.open_session(self.json_body(), self.client)
        self.set_status(201 if created else 200)
        self.finish(session)


class SessionHandler(ApiHandler):
    def get(self, session_id: str) -> None:
        self.finish(self.service.get_session(session_id))

    async def delete(self, session_id: str) -> None:
        self.finish(await self.service.shutdown_session(session_id))


class SessionInterruptHandler(ApiHandler):
    async def post(self, session_id: str) -> None:
        self.finish(await self.service.interrupt_session(session_id))


class SessionRestartHandler(ApiHandler):
    async def post(self, session_id: str) -> None:
        self.finish(await self.service.restart_session(session_id))


def route_id(name: str) -> str:
    """A path segment holding an id, captured as ``name`` (the same pattern messages validate)."""
    return f"(?P<{name}>{ids.ID})"


def routes(deps: dict[str, Any]) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    """The REST routes; every one of them is described in ``openapi.document()``."""
    table: list[tuple[str, type[web.RequestHandler]]] = [
        (r"/api/health", HealthHandler),
        (r"/api/openapi\.json", OpenAPIHandler),
        (r"/api/languages", LanguagesHandler),
        (r"/api/execute", ExecuteHandler),
        (r"/api/executions", ExecutionsHandler),
        (r"/api/executions/" + route_id("execution_id"), ExecutionHandler),
        (r"/api/sessions", SessionsHandler),
        (r"/api/sessions/" + route_id("session_id"), SessionHandler),
        (r"/api/sessions/" + route_id("session_id") + r"/interrupt", SessionInterruptHandler),
        (r"/api/sessions/" + route_id("session_id") + r"/restart", SessionRestartHandler),
    ]
    return [(pattern, handler, deps) for pattern, handler in table]
