"""One client connection: message dispatch and execution tasks, independent of the socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from .. import __version__
from ..errors import IcpyError, UnknownType
from ..protocol import events
from ..protocol.messages import ExecuteRequest, parse_frame
from ..runtime.execution import Execution
from ..service import Service
from . import (
    interactive,
    rpc_sharing,  # noqa: F401  (registers its JSON-RPC methods)
    sharing,
)
from .rpc import Dispatcher

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], None]
Handler = Callable[[dict[str, Any]], Awaitable[None]]


async def _always() -> None:
    return None


def _echo(message: dict[str, Any]) -> dict[str, Any]:
    """The request's ``request_id`` for an error it caused (when it is a usable scalar)."""
    rid = message.get("request_id")
    ok = isinstance(rid, (str, int, float)) and not isinstance(rid, bool)
    return {"request_id": rid} if ok else {}


class Connection:
    """Everything a WebSocket does, minus the socket: feed it frames, it calls ``send``.

    ``send`` must not block (it enqueues); executions run as tasks so that a long run
    never stops the connection from answering pings or taking more requests.
    """

    def __init__(self, service: Service, send: Send) -> None:
        self.id = uuid.uuid4().hex
        self.service = service
        self.manager = service.manager
        self.send = send
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closed = False
        self.handlers: dict[str, Handler] = {
            "ping": self.on_ping,
            "execute": self.on_execute,
            "execute_streaming": self.on_execute_streaming,
        }
        interactive.install(self)  # interrupt, input_reply, complete/inspect/is_complete, session ops
        # Broadcast/attached traffic goes through a bounded queue; the socket replaces this.
        self.send_bounded: Callable[[dict[str, Any]], bool] = lambda event: self.send(event) or True
        # Resolves once the client's outbox has room (the socket replaces this too).
        self.room: Callable[[], Awaitable[None]] = _always
        self._answers = asyncio.Lock()
        self.sharing = sharing.install(self)  # subscribe/attach, get_result/history, resume
        self.rpc = Dispatcher(service, self.id, send, self.spawn,  # JSON-RPC on the same socket
                              send_bounded=lambda event: self.send_bounded(event))

    def welcome(self) -> dict[str, Any]:
        return events.welcome(self.id, __version__, self.manager.languages.available())

    async def on_frame(self, frame: str | bytes) -> None:
        if self.rpc.claim(frame):
            return
        message: dict[str, Any] = {}
        try:
            message = parse_frame(frame)
            kind = message.get("type")
            handler = self.handlers.get(kind) if isinstance(kind, str) else None
            if handler is None:
                raise UnknownType(
                    f"Unknown message type {kind!r}; expected one of: {', '.join(self.handlers)}",
                    known=list(self.handlers),
                )
            await handler(message)
        except IcpyError as exc:
            self.send({**events.error(exc), **_echo(message)})
        except Exception as exc:  # a bug: tornado would drop the socket without a close code
            log.exception("connection %s: frame failed", self.id)
            self.send({**events.error(IcpyError(f"Internal error: {exc}")), **_echo(message)})

    async def on_ping(self, message: dict[str, Any]) -> None:
        self.send(events.pong())

    # -- execution ----------------------------------------------------------------
    async def on_execute(self, message: dict[str, Any]) -> None:
        self.start_execution(self.service.parse_execute(message), streaming=False)

    async def on_execute_streaming(self, message: dict[str, Any]) -> None:
        self.start_execution(self.service.parse_execute(message), streaming=True)

    def start_execution(self, request: ExecuteRequest, *, streaming: bool) -> None:
        def listener(event: dict[str, Any]) -> None:
            # An input_request reaches a non-streaming client too: it must answer or wait out
            # the timeout.
            if streaming or event["type"] == "execution_result" or (
                    event["type"] == "execution_update" and event["update"]["kind"] == "input_request"):
                self.send(event)

        self.spawn(self._execute(request, listener))

    async def _execute(self, request: ExecuteRequest, listener: Callable[[dict[str, Any]], None]) -> Execution | None:
        try:
            return await self.service.execute(request, self.id, [listener])
        except IcpyError as exc:
            exc.details.setdefault("execution_id", request.execution_id)
            self.send(events.error(exc))
        except Exception as exc:  # a bug: still an error the client can match to its execute
            log.exception("connection %s: execution %s failed", self.id, request.execution_id)
            self.send(events.error(IcpyError(f"Internal error: {exc}", execution_id=request.execution_id)))
        return None

    async def answer(self, produce: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        """Send what ``produce`` returns once the client has read enough of what it was sent.

        For answers that may be large (a result, a page of history): one at a time, each
        made only when the outbox has room, so a client that asks without reading holds
        a bounded outbox and a queue of small waiting tasks, not a copy per request."""
        async with self._answers:
            await self.room()
            self.send(await produce())

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("connection %s: task failed", self.id, exc_info=exc)
            with contextlib.suppress(Exception):
                self.send(events.error(IcpyError(f"Internal error: {exc}")))

    async def close(self) -> None:
        """The socket is gone: its default sessions (and their running work) go too.

        Tasks are not cancelled: an execution in a named session runs on (its client may
        come back for it), and one in a default session ends when its session shuts down.
        """
        self.closed = True
        self.sharing.close()
        self.rpc.close()
        await self.manager.close_connection(self.id)

