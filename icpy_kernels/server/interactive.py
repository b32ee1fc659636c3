"""WebSocket messages editors need: interrupt, stdin replies, completion/inspection, session ops."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import IcpyError, ValidationError
from ..protocol import events
from ..protocol.editor import EDITOR_KINDS, parse_input_reply, request_id
from ..protocol.messages import optional_id
from . import rpc

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger(__name__)

Operation = Callable[[], Awaitable[dict[str, Any]]]


class Interactive:
    """Handlers for one connection; each answers ``<type>_reply`` (or ``sessions``) echoing
    ``request_id``, or an ``error`` that echoes it too.

    Anything that waits on a kernel runs as a task: Tornado reads the next frame only once
    ``on_message`` returns, and a completion must never wait behind a restart.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.service = connection.service

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[None]]]:
        return {
            "interrupt": self.on_interrupt,
            "input_reply": self.on_input_reply,
            "complete": self.on_editor,
            "inspect": self.on_editor,
            "is_complete": self.on_editor,
            "list_sessions": self.on_list_sessions,
            "restart_session": self.on_restart_session,
            "shutdown_session": self.on_shutdown_session,
        }

    # -- plumbing -------------------------------------------------------------------
    def _reply(self, reply_type: str, rid: Any, body: dict[str, Any]) -> dict[str, Any]:
        head: dict[str, Any] = {"type": reply_type}
        if rid is not None:
            head["request_id"] = rid
        return {**head, **body, "timestamp": events.now()}

    def _error(self, exc: IcpyError, rid: Any) -> None:
        event = events.error(exc)
        if rid is not None:
            event["request_id"] = rid
        self.connection.send(event)

    async def _answer(self, reply_type: str, message: dict[str, Any], operation: Operation) -> None:
        """Run ``operation`` in a task; send its result as ``reply_type`` or its error."""
        rid = request_id(message)

        async def run() -> None:
            try:
                body = await operation()
            except IcpyError as exc:
                self._error(exc, rid)
                return
            except Exception as exc:  # a bug still answers the request it failed, by its id
                log.exception("connection %s: %s failed", self.connection.id, reply_type)
                self._error(IcpyError(f"Internal error: {exc}"), rid)
                return
            self.connection.send(self._reply(reply_type, rid, body))

        self.connection.spawn(run())

    @staticmethod
    def _session_id(message: dict[str, Any]) -> str:
        session_id = optional_id(message, "session_id")
        if session_id is None:
            raise ValidationError("'session_id' is required", field="session_id")
        return session_id

    # -- handlers -------------------------------------------------------------------
    async def on_interrupt(self, message: dict[str, Any]) -> None:
        async def interrupt() -> dict[str, Any]:
            execution_id = optional_id(message, "execution_id")
            session_id = optional_id(message, "session_id")
            if execution_id is None and session_id is None:
                raise ValidationError("interrupt needs 'execution_id' or 'session_id'", field="execution_id")
            return await self.service.interrupt(execution_id=execution_id, session_id=session_id)

        await self._answer("interrupt_reply", message, interrupt)

    async def on_input_reply(self, message: dict[str, Any]) -> None:
        rid = request_id(message)
        try:
            execution_id, value = parse_input_reply(message)
            body = self.service.send_input(execution_id, value)
        except IcpyError as exc:
            self._error(exc, rid)
            return
        self.connection.send(self._reply("input_accepted", rid, body))

    async def on_editor(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        connection_id = self.connection.id
        await self._answer(f"{kind}_reply", message, lambda: self.service.editor(kind, message, connection_id))

    async def on_list_sessions(self, message: dict[str, Any]) -> None:
        rid = request_id(message)
        self.connection.send(self._reply("sessions", rid, {"sessions": self.service.list_sessions()}))

    async def on_restart_session(self, message: dict[str, Any]) -> None:
        async def restart() -> dict[str, Any]:
            session_id = self._session_id(message)
            return {"session_id": session_id, "session": await self.service.restart_session(session_id)}

        await self._answer("restart_session_reply", message, restart)

    async def on_shutdown_session(self, message: dict[str, Any]) -> None:
        async def shutdown() -> dict[str, Any]:
            return await self.service.shutdown_session(self._session_id(message))

        await self._answer("shutdown_session_reply", message, shutdown)


def install(connection: Connection) -> None:
    """Add the interactive handlers to a connection's dispatch table."""
    connection.handlers.update(Interactive(connection).handlers())


# -- the same operations as JSON-RPC methods (execute.interrupt and session.* live in rpc.py) --
def _editor_method(kind: str) -> rpc.RpcMethod:
    async def call_editor(call: rpc.Call, params: dict[str, Any]) -> dict[str, Any]:
        return await call.service.editor(kind, params, call.connection_id)

    return call_editor


for _kind in EDITOR_KINDS:
    rpc.METHODS[f"editor.{_kind}"] = _editor_method(_kind)


@rpc.method("execute.input")
async def execute_input(call: rpc.Call, params: dict[str, Any]) -> dict[str, Any]:
    execution_id, value = parse_input_reply(params)
    return call.service.send_input(execution_id, value)
