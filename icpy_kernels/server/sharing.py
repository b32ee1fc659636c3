"""WebSocket messages for shared sessions: subscribe/attach (broadcast), history, resume."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import IcpyError, SlowConsumer, ValidationError
from ..events.bus import Subscription
from ..protocol import events
from ..protocol.sharing import parse_history, parse_resume, parse_topics, require_id
from .rpc import Call, method

if TYPE_CHECKING:
    from .connection import Connection

Handler = Callable[[dict[str, Any]], Awaitable[None]]


def _request_id(message: dict[str, Any]) -> dict[str, Any]:
    """The client's ``request_id`` (a JSON scalar), to echo on the answer."""
    rid = message.get("request_id")
    if rid is None:
        return {}
    if isinstance(rid, bool) or not isinstance(rid, (str, int, float)):
        raise ValidationError("'request_id' must be a string or a number", field="request_id")
    return {"request_id": rid}


class Sharing:
    """One connection's subscriptions and attachments.

    Broadcast and attached traffic goes through the connection's bounded queue
    (``send_bounded``); the first time it is full, the client gets one ``slow_consumer``
    error and loses every subscription and attachment, so a stalled reader costs bounded
    memory and never slows anyone else. Its own executions (and resumes) are not bounded:
    they are what it asked for, and they are in the history anyway.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.service = connection.service
        self.subscription: Subscription | None = None
        self.overflowed = False

    def handlers(self) -> dict[str, Handler]:
        table = {
            "subscribe": self.on_subscribe,
            "unsubscribe": self.on_unsubscribe,
            "attach": self.on_attach,
            "detach": self.on_detach,
            "get_result": self.on_get_result,
            "history": self.on_history,
            "resume": self.on_resume,
        }
        return {kind: self._guarded(handler) for kind, handler in table.items()}

    def _guarded(self, handler: Handler) -> Handler:
        """Errors (validation ones included) echo the request's ``request_id``."""

        async def run(message: dict[str, Any]) -> None:
            try:
                await handler(message)
            except IcpyError as exc:
                rid = message.get("request_id")
                echo = {"request_id": rid} if isinstance(rid, (str, int, float)) and rid is not True \
                    and rid is not False else {}
                self.connection.send({**events.error(exc), **echo})

        return run

    def _reply(self, kind: str, message: dict[str, Any], body: dict[str, Any]) -> None:
        self.connection.send({"type": kind, **_request_id(message), **body, "timestamp": events.now()})

    # -- bounded delivery -------------------------------------------------------------
    def deliver(self, event: dict[str, Any]) -> None:
        if self.overflowed or self.connection.closed:
            return
        if not self.connection.send_bounded(event):
            self._overflow()

    def _overflow(self) -> None:
        self.overflowed = True
        topics = sorted(self.subscription.patterns) if self.subscription else []
        if self.subscription is not None:
            self.subscription.remove()
        sessions = self.service.hub.detach_all(self.connection.id)
        exc = SlowConsumer(
            "This client reads too slowly: it was unsubscribed from every topic and detached "
            f"from every session (more than {self.service.settings.send_queue_size} messages waited)",
            topics=topics, sessions=sessions)
        self.connection.send(events.error(exc))

    # -- broadcast ----------------------------------------------------------------------
    async def on_subscribe(self, message: dict[str, Any]) -> None:
        topics = parse_topics(message, self.service.settings.max_subscriptions_per_connection)
        if self.subscription is None:
            self.subscription = self.service.hub.bus.subscribe(
                lambda _topic, event: self.deliver(event), owner=self.connection.id)
        self.overflowed = False
        self._reply("subscribed", message, {"topics": self.subscription.add(topics)})

    async def on_unsubscribe(self, message: dict[str, Any]) -> None:
        topics = None if message.get("topics") is None else parse_topics(message)
        left = self.subscription.remove(topics) if self.subscription else []
        self._reply("unsubscribed", message, {"topics": topics or [], "remaining": left})

    async def on_attach(self, message: dict[str, Any]) -> None:
        session_id = require_id(message, "session_id")
        self.overflowed = False
        body = self.service.attach(session_id, self.connection.id, self.deliver)
        # Sent after any replay of the running execution: the client sees "attached" last,
        # but every replayed message already names the session.
        self._reply("attached", message, body)

    async def on_detach(self, message: dict[str, Any]) -> None:
        session_id = require_id(message, "session_id")
        self._reply("detached", message, self.service.detach(session_id, self.connection.id))

    # -- history and resume ---------------------------------------------------------------
    def _spawn(self, message: dict[str, Any], operation: Callable[[], Awaitable[None]]) -> None:
        execution_id = message.get("execution_id") if isinstance(message.get("execution_id"), str) else None

        async def run() -> None:
            try:
                await operation()
            except IcpyError as exc:
                if execution_id is not None:
                    exc.details.setdefault("execution_id", execution_id)
                self.connection.send({**events.error(exc), **_request_id(message)})

        self.connection.spawn(run())

    async def on_get_result(self, message: dict[str, Any]) -> None:
        execution_id = require_id(message, "execution_id")
        rid = _request_id(message)

        async def get() -> dict[str, Any]:
            # The result's own dict (and so its encoding) is shared by every request for it.
            return events.Reply(await self.service.get_result(execution_id), rid)

        self._spawn(message, lambda: self.connection.answer(get))

    async def on_history(self, message: dict[str, Any]) -> None:
        query = parse_history(message)

        async def history() -> dict[str, Any]:
            page = await self.service.history(query)
            return {"type": "history", **_request_id(message), **page, "timestamp": events.now()}

        self._spawn(message, lambda: self.connection.answer(history))

    async def on_resume(self, message: dict[str, Any]) -> None:
        execution_id, after_seq = parse_resume(message)

        async def resume() -> None:
            await self.connection.room()  # a replay can be large too: not while the outbox is full
            await self.service.resume(execution_id, after_seq, self.connection.send)

        self._spawn(message, resume)

    def close(self) -> None:
        if self.subscription is not None:
            self.subscription.close()
            self.subscription = None
        self.service.hub.detach_all(self.connection.id)


def install(connection: Connection) -> Sharing:
    """Add the sharing handlers to a connection's dispatch table."""
    sharing = Sharing(connection)
    connection.handlers.update(sharing.handlers())
    return sharing


# -- the same over JSON-RPC (registered in the method table every Dispatcher copies) ----------
@method("history.list")
async def rpc_history_list(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """``{entries, next_before}``, newest first; params as the ``history`` message."""
    return await call.service.history(parse_history(params))


@method("history.get")
async def rpc_history_get(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """The ``execution_result`` (memory, then the store), or a ``running`` snapshot."""
    return await call.service.get_result(require_id(params, "execution_id"))


@method("execute.resume")
async def rpc_execute_resume(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Notifies ``execute.update`` for every update after ``after_seq`` (then live ones);
    the response is the result."""
    execution_id, after_seq = parse_resume(params)

    def listener(event: dict[str, Any]) -> None:
        if event["type"] == "execution_update":
            call.notify("execute.update", {k: event[k] for k in ("execution_id", "seq", "update")})

    return await call.service.resume(execution_id, after_seq, listener)
