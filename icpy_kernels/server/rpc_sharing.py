"""Shared sessions over JSON-RPC: events.subscribe/unsubscribe, session.attach/detach, execute.get_result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import SlowConsumer
from ..events.bus import Subscription
from ..protocol.sharing import parse_topics, require_id
from ..service import Service
from .rpc import METHODS, Call, method
from .sharing import rpc_history_get

Notify = Callable[[str, dict[str, Any]], None]
NotifyBounded = Callable[[str, dict[str, Any]], bool]
Via = tuple[NotifyBounded, Notify]  # how the call that set a feed up came (bare or wrapped)

STATE_KEY = "sharing"
UPDATE_FIELDS = ("execution_id", "seq", "update")
STARTED_FIELDS = ("execution_id", "session_id", "language")


class RpcSharing:
    """One connection's JSON-RPC subscriptions and attachments.

    Notifications go through the connection's bounded queue, under the native rule: the first
    time it is full the client gets one ``events.error`` notification (``slow_consumer``) and
    loses every subscription and attachment. An attachment is per connection and session (the
    hub keys it so), whichever protocol made it: attaching again replaces it, and detaching by
    either protocol ends it.
    """

    def __init__(self, service: Service, connection_id: str) -> None:
        self.service = service
        self.connection_id = connection_id
        self.subscription: Subscription | None = None
        self.via: Via | None = None  # for broadcasts: the latest events.subscribe's form
        self.overflowed = False

    # -- delivery -----------------------------------------------------------------------
    def _send(self, via: Via, name: str, params: dict[str, Any]) -> None:
        if self.overflowed:
            return
        bounded, _ = via
        if not bounded(name, params):
            self._overflow(via)

    def _overflow(self, via: Via) -> None:
        self.overflowed = True
        topics = sorted(self.subscription.patterns) if self.subscription else []
        if self.subscription is not None:
            self.subscription.remove()
        sessions = self.service.hub.detach_all(self.connection_id)
        exc = SlowConsumer(
            "This client reads too slowly: it was unsubscribed from every topic and detached "
            f"from every session (more than {self.service.settings.send_queue_size} messages waited)",
            topics=topics, sessions=sessions)
        _, unbounded = via
        unbounded("events.error", exc.to_dict())

    def _on_broadcast(self, topic: str, event: dict[str, Any]) -> None:
        if self.via is not None:
            self._send(self.via, "events.event", event)

    def _session_listener(self, via: Via) -> Callable[[dict[str, Any]], None]:
        """An attached session's events as the notifications ``execute.code_streaming`` sends,
        plus ``execute.result`` and ``session.event`` (keepalives are left out: JSON-RPC
        clients have the socket's pings)."""

        def listener(event: dict[str, Any]) -> None:
            kind = event["type"]
            if kind == "execution_update":
                self._send(via, "execute.update", {k: event[k] for k in UPDATE_FIELDS})
            elif kind == "execution_started":
                self._send(via, "execute.started", {k: event[k] for k in STARTED_FIELDS})
            elif kind == "execution_result":
                self._send(via, "execute.result", event)
            elif kind != "keepalive":  # kernel_status, session_restarted/shutdown, detached
                self._send(via, "session.event", event)

        return listener

    # -- operations ----------------------------------------------------------------------
    def subscribe(self, call: Call, topics: list[str]) -> list[str]:
        if self.subscription is None:
            self.subscription = self.service.hub.bus.subscribe(self._on_broadcast, owner=self.connection_id)
        self.via = _via(call)
        self.overflowed = False
        return self.subscription.add(topics)

    def unsubscribe(self, topics: list[str] | None) -> list[str]:
        return self.subscription.remove(topics) if self.subscription else []

    def attach(self, call: Call, session_id: str) -> dict[str, Any]:
        self.overflowed = False
        # The running execution is replayed before this returns: the response comes last.
        return self.service.attach(session_id, self.connection_id, self._session_listener(_via(call)))

    def close(self) -> None:
        if self.subscription is not None:
            self.subscription.close()
            self.subscription = None
        self.service.hub.detach_all(self.connection_id)


def _via(call: Call) -> Via:
    def unbounded(name: str, params: dict[str, Any]) -> bool:  # a Dispatcher without a socket
        call.notify(name, params)
        return True

    return call.notify_bounded or unbounded, call.notify


def _sharing(call: Call) -> RpcSharing:
    state = call.state.get(STATE_KEY)
    if state is None:
        state = call.state[STATE_KEY] = RpcSharing(call.service, call.connection_id)
    return state


@method("events.subscribe")
async def events_subscribe(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """``{topics}``: every pattern the connection now has; events arrive as ``events.event``."""
    topics = parse_topics(params, call.service.settings.max_subscriptions_per_connection)
    return {"topics": _sharing(call).subscribe(call, topics)}


@method("events.unsubscribe")
async def events_unsubscribe(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Without ``topics``: all of them. ``{topics, remaining}``."""
    topics = None if params.get("topics") is None else parse_topics(params)
    return {"topics": topics or [], "remaining": _sharing(call).unsubscribe(topics)}


@method("session.attach")
async def session_attach(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """``{session_id, session}``; the session's executions then arrive as notifications."""
    return _sharing(call).attach(call, require_id(params, "session_id"))


@method("session.detach")
async def session_detach(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """``{session_id, detached}`` (false when it was not attached)."""
    return call.service.detach(require_id(params, "session_id"), call.connection_id)


# The name clients look for next to execute.*; one operation with history.get.
METHODS["execute.get_result"] = rpc_history_get
