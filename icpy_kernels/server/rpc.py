"""JSON-RPC 2.0 over the WebSocket: the method table over Service, batches and notifications.

Other modules add methods with ``@method("name")`` (or by setting ``METHODS[name]``); every
Dispatcher created afterwards serves them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import IcpyError, ValidationError
from ..protocol import jsonrpc
from ..protocol.messages import optional_id
from ..service import Service

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], None]
Spawn = Callable[[Awaitable[Any]], Any]


@dataclass
class Call:
    """What a method gets besides its params: the service, the caller, and a way to notify it."""

    service: Service
    connection_id: str
    request: jsonrpc.Request
    notify: Callable[[str, dict[str, Any]], None]
    # Broadcast/attached traffic goes through the connection's bounded queue: False when full.
    notify_bounded: Callable[[str, dict[str, Any]], bool] | None = None
    # Per-connection state of methods that keep some (subscriptions); closed with the socket.
    state: dict[str, Any] = field(default_factory=dict)


RpcMethod = Callable[[Call, dict[str, Any]], Awaitable[Any]]
METHODS: dict[str, RpcMethod] = {}


def method(name: str) -> Callable[[RpcMethod], RpcMethod]:
    def register(fn: RpcMethod) -> RpcMethod:
        METHODS[name] = fn
        return fn

    return register


class Dispatcher:
    """One per connection: claims JSON-RPC frames and answers them, each frame as its own task
    so a long execution never holds up the requests behind it."""

    def __init__(self, service: Service, connection_id: str, send: Send, spawn: Spawn,
                 methods: dict[str, RpcMethod] | None = None,
                 send_bounded: Callable[[dict[str, Any]], bool] | None = None) -> None:
        self.service = service
        self.connection_id = connection_id
        self.send = send
        self.spawn = spawn
        self.methods = dict(METHODS if methods is None else methods)
        self.send_bounded = send_bounded or (lambda message: self.send(message) or True)
        self.state: dict[str, Any] = {}

    def close(self) -> None:
        """The connection is gone: state kept by methods (subscriptions...) ends with it."""
        for value in self.state.values():
            close = getattr(value, "close", None)
            if close is not None:
                close()
        self.state.clear()

    def claim(self, frame: str | bytes) -> bool:
        """Dispatch ``frame`` if it is JSON-RPC (bare, batch or wrapped); False leaves it to
        the native protocol. Only frames mentioning ``"jsonrpc"`` or starting with ``[``
        are decoded here, so ordinary frames are parsed once."""
        text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
        mentions = '"jsonrpc"' in text
        if not mentions and not text.lstrip().startswith("["):
            return False
        try:
            message = jsonrpc.decode(text)
        except jsonrpc.Rejected as rejected:
            if not mentions:
                return False
            self.send(rejected.response)
            return True
        if jsonrpc.is_wrapped(message):
            self.spawn(self._reply(message.get("request"), wrapped=True))
            return True
        if jsonrpc.is_jsonrpc(message):
            self.spawn(self._reply(message, wrapped=False))
            return True
        return False

    async def _reply(self, payload: Any, *, wrapped: bool) -> None:
        response = await self.answer(payload, wrapped=wrapped)
        if response is not None:
            self.send(jsonrpc.wrap_response(response) if wrapped else response)

    async def answer(self, payload: Any, *, wrapped: bool = False) -> Any:
        """The response (a list for a batch), or None when nothing is to be sent."""
        if isinstance(payload, list):
            if not payload:
                return jsonrpc.error(None, jsonrpc.INVALID_REQUEST, "Invalid Request: empty batch")
            limit = self.service.settings.max_batch_size
            if len(payload) > limit:
                return jsonrpc.error(None, jsonrpc.INVALID_REQUEST,
                                     f"Invalid Request: a batch holds at most {limit} requests, "
                                     f"this one {len(payload)}", {"limit": limit})
            return await self._batch(payload, wrapped)
        return await self.call(payload, wrapped=wrapped)

    async def _batch(self, entries: list[Any], wrapped: bool) -> list[dict[str, Any]] | None:
        """The entries run concurrently, but start one per loop iteration: each one's first
        step (validation, often the whole method) runs before the next starts, and the
        frames of other clients get read in between instead of after the whole batch."""
        tasks = []
        for entry in entries:
            tasks.append(asyncio.ensure_future(self.call(entry, wrapped=wrapped)))
            await asyncio.sleep(0)
        responses = await asyncio.gather(*tasks)
        return [r for r in responses if r is not None] or None

    async def call(self, entry: Any, *, wrapped: bool = False) -> dict[str, Any] | None:
        try:
            request = jsonrpc.parse_request(entry)
        except jsonrpc.Rejected as rejected:
            return rejected.response
        response = await self._invoke(request, wrapped)
        return None if request.notification else response

    async def _invoke(self, request: jsonrpc.Request, wrapped: bool) -> dict[str, Any]:
        fn = self.methods.get(request.method)
        if fn is None:
            return jsonrpc.method_not_found(request.id, request.method, list(self.methods))

        def notify(name: str, params: dict[str, Any]) -> None:
            message = jsonrpc.notification(name, params)
            self.send(jsonrpc.wrap_notification(message) if wrapped else message)

        def notify_bounded(name: str, params: dict[str, Any]) -> bool:
            message = jsonrpc.notification(name, params)
            return self.send_bounded(jsonrpc.wrap_notification(message) if wrapped else message)

        try:
            params = jsonrpc.named_params(request)
            call = Call(self.service, self.connection_id, request, notify, notify_bounded, self.state)
            value = await fn(call, params)
        except IcpyError as exc:
            return jsonrpc.from_exception(request.id, exc)
        except Exception as exc:  # a bug must still answer the caller, once
            log.exception("JSON-RPC %s failed", request.method)
            return jsonrpc.error(request.id, jsonrpc.INTERNAL_ERROR, f"Internal error: {exc}",
                                 {"code": "internal_error"})
        return jsonrpc.result(request.id, value)


def require_id(params: dict[str, Any], name: str) -> str:
    value = optional_id(params, name)
    if value is None:
        raise ValidationError(f"'{name}' is required", field=name)
    return value


# -- execution --------------------------------------------------------------------
async def _execute(call: Call, params: dict[str, Any], listeners: list[Any]) -> dict[str, Any]:
    request = call.service.parse_execute(params)
    try:
        execution = await call.service.execute(request, call.connection_id, listeners)
    except IcpyError as exc:
        exc.details.setdefault("execution_id", request.execution_id)
        raise
    return execution.result or execution.snapshot()


@method("execute.code")
async def execute_code(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Run code; the result is the ``execution_result`` payload (a timeout is a result too)."""
    return await _execute(call, params, [])


@method("execute.code_streaming")
async def execute_code_streaming(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Like ``execute.code``, telling ``execute.started`` / ``execute.update`` as it runs."""

    def listener(event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "execution_started":
            call.notify("execute.started", {k: event[k] for k in ("execution_id", "session_id", "language")})
        elif kind == "execution_update":
            call.notify("execute.update", {k: event[k] for k in ("execution_id", "seq", "update", "late")
                                           if k in event})

    return await _execute(call, params, [listener])


@method("execute.interrupt")
async def execute_interrupt(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return await call.service.interrupt(
        execution_id=optional_id(params, "execution_id"), session_id=optional_id(params, "session_id")
    )


# -- sessions and languages -----------------------------------------------------------
@method("session.create")
async def session_create(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return await call.service.create_session(params, call.connection_id)


@method("session.list")
async def session_list(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return {"sessions": call.service.list_sessions()}


@method("session.restart")
async def session_restart(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return await call.service.restart_session(require_id(params, "session_id"))


@method("session.interrupt")
async def session_interrupt(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return await call.service.interrupt_session(require_id(params, "session_id"))


@method("session.shutdown")
async def session_shutdown(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return await call.service.shutdown_session(require_id(params, "session_id"))


@method("languages.list")
async def languages_list(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return {"languages": await call.service.describe_languages()}
