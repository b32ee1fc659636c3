"""Follows every execution and session: broadcast, attached clients, resume logs, history."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..protocol import events
from ..protocol.messages import ExecuteRequest
from .bus import EventBus

if TYPE_CHECKING:  # only a type here; `icpy exec` runs without the store (and sqlite3)
    from ..history.store import HistoryStore

log = logging.getLogger(__name__)

LATE_FLUSH = 0.2  # late output is written to the store at most this often per execution

Listener = Callable[[dict[str, Any]], None]

# Execution event type -> (bus topic, broadcast type).
EXECUTION_TOPICS = {
    "execution_started": ("code_execution.started", "code_execution_started"),
    "execution_update": ("code_execution.update", "code_execution_update"),
    "execution_result": ("code_execution.completed", "code_execution_completed"),
}


class Feed:
    """One execution as the hub saw it: its update log (for resume) and who else watches it.

    Kept from the moment the execution is requested until its result is in the store, so
    a resume finds it either here or there, never in neither.
    """

    def __init__(self, request: ExecuteRequest, connection_id: str | None) -> None:
        self.execution_id = request.execution_id
        self.connection_id = connection_id
        self.code = request.code
        self.session_id = request.session_id
        self.language = request.language
        self.started: dict[str, Any] | None = None
        self.updates: list[dict[str, Any]] = []
        self.result: dict[str, Any] | None = None
        self.watchers: list[Listener] = []  # resumed or retried requests
        self.ended = asyncio.Event()  # the result arrived, or it never ran
        self.source: Callable[[], dict[str, Any]] | None = None  # the result with late output
        self.late_pending = False  # a store update for late output is scheduled

    def row(self) -> dict[str, Any]:
        return {"execution_id": self.execution_id, "session_id": self.session_id,
                "connection_id": self.connection_id, "language": self.language, "code": self.code}

    def replay(self, listener: Listener, after_seq: int, *, started: bool) -> None:
        """Tell ``listener`` what happened so far; the caller then adds it as a watcher
        in the same step (no await in between), so nothing is lost or repeated."""
        if started and self.started is not None:
            listener(self.started)
        for event in self.updates:
            if event["seq"] > after_seq:
                listener(event)
        if self.result is not None:
            listener(self.result)


class Hub:
    """Called synchronously from the kernel readers (through execution listeners): it only
    appends, enqueues and hands writes to the store's thread; it never waits."""

    def __init__(self, bus: EventBus | None = None, store: HistoryStore | None = None) -> None:
        self.bus = bus or EventBus()
        self.store = store
        self.feeds: dict[str, Feed] = {}
        self.attached: dict[str, dict[str, Listener]] = {}  # session_id -> connection_id -> listener

    # -- executions -------------------------------------------------------------------
    def track(self, request: ExecuteRequest, connection_id: str | None) -> Listener:
        """A new execution: returns the listener to put first on it."""
        feed = Feed(request, connection_id)
        self.feeds[feed.execution_id] = feed
        return lambda event: self._on_event(feed, event)

    def result_source(self, execution_id: str, source: Callable[[], dict[str, Any]]) -> None:
        """Where the execution's current result (late output included) is read from."""
        feed = self.feeds.get(execution_id)
        if feed is not None:
            feed.source = source

    def never_ran(self, execution_id: str) -> None:
        feed = self.feeds.get(execution_id)
        if feed is not None and feed.result is None:
            del self.feeds[execution_id]
            feed.ended.set()

    def _on_event(self, feed: Feed, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "execution_started":
            feed.session_id, feed.language, feed.started = event["session_id"], event["language"], event
            if self.store is not None:
                self.store.record_started(feed.row())
        elif kind == "execution_update":
            feed.updates.append(event)
            if event.get("late"):
                self._persist_late(feed)
        elif kind == "execution_result":
            feed.result = event
            feed.session_id = event["session_id"]
            self._persist(feed)
        if kind in EXECUTION_TOPICS:
            self._broadcast(feed, event)
        for watcher in list(feed.watchers):
            watcher(event)
        for connection_id, listener in list(self.attached.get(feed.session_id or "", {}).items()):
            if connection_id != feed.connection_id:
                listener(event)
        if kind == "execution_result":
            feed.watchers.clear()
            feed.ended.set()

    def _persist(self, feed: Feed) -> None:
        written = None
        if self.store is not None:
            written = self.store.record_finished(feed.row(), feed.result or {}, feed.updates)
        if written is None:
            self._stored(feed)
        else:
            written.add_done_callback(lambda _: self._stored(feed))

    def _stored(self, feed: Feed) -> None:
        """The store has the log now: resume reads it there. The feed may live on while its
        execution can still get late output (runtime/router.py), holding only that."""
        self.feeds.pop(feed.execution_id, None)
        feed.updates = [u for u in feed.updates if u.get("late")]

    def _persist_late(self, feed: Feed) -> None:
        """Late output joins the stored execution: its update log and its result. One write
        per ``LATE_FLUSH`` at most: a thread printing in a loop is not a write per line."""
        if self.store is None or feed.late_pending:
            return
        feed.late_pending = True

        def flush() -> None:
            feed.late_pending = False
            if feed.source is not None:
                feed.result = feed.source()
            late = [u for u in feed.updates if u.get("late")]
            if self.store is not None and feed.result is not None and late:
                self.store.record_late(feed.result, late)
                if feed.execution_id not in self.feeds:  # stored: the store keeps them now
                    feed.updates = [u for u in feed.updates if u["seq"] > late[-1]["seq"]]

        asyncio.get_running_loop().call_later(LATE_FLUSH, flush)

    def _broadcast(self, feed: Feed, event: dict[str, Any]) -> None:
        topic, kind = EXECUTION_TOPICS[event["type"]]
        if not self.bus.wants(topic):
            return
        message: dict[str, Any] = {
            "type": kind, "topic": topic, "execution_id": feed.execution_id,
            "session_id": feed.session_id, "connection_id": feed.connection_id,
            "language": feed.language, "status": "running",
        }
        if kind == "code_execution_started":
            message["code"] = feed.code
        elif kind == "code_execution_update":
            message.update(seq=event["seq"], update=event["update"])
            if event.get("late"):
                message.update(late=True, status=feed.result["status"] if feed.result else "running")
        else:
            message.update(status=event["status"], result=event)
        message["timestamp"] = event.get("timestamp") or events.now()
        self.bus.publish(topic, message)

    def watch(self, execution_id: str, listener: Listener, after_seq: int, *, started: bool) -> Feed | None:
        """Replay then follow a feed still in memory; None when it is not (look in the store)."""
        feed = self.feeds.get(execution_id)
        if feed is None:
            return None
        feed.replay(listener, after_seq, started=started)
        if feed.result is None:
            feed.watchers.append(listener)
        return feed

    # -- sessions ---------------------------------------------------------------------
    def on_session_event(self, message: dict[str, Any]) -> None:
        """A SessionManager session listener: ``session.<id>.<event>`` on the bus."""
        session_id = message["session_id"]
        kind = message["type"]
        topic = f"session.{session_id}.{kind.removeprefix('session_')}"
        if self.bus.wants(topic):
            self.bus.publish(topic, {**message, "topic": topic})
        attached = self.attached.get(session_id, {})
        for listener in list(attached.values()):
            listener(message)
        if kind == "session_shutdown":
            for listener in list(self.attached.pop(session_id, {}).values()):
                listener({"type": "detached", "session_id": session_id, "reason": "session_shutdown",
                          "timestamp": events.now()})

    def attach(self, session_id: str, connection_id: str, listener: Listener,
               current: str | None) -> None:
        """Follow a session's executions; the one running now is replayed from its start."""
        self.attached.setdefault(session_id, {})[connection_id] = listener
        feed = self.feeds.get(current) if current else None
        if feed is not None and feed.connection_id != connection_id:
            feed.replay(listener, 0, started=True)

    def detach(self, session_id: str, connection_id: str) -> bool:
        attached = self.attached.get(session_id, {})
        found = attached.pop(connection_id, None) is not None
        if not attached:
            self.attached.pop(session_id, None)
        return found

    def detach_all(self, connection_id: str) -> list[str]:
        sessions = [sid for sid, conns in self.attached.items() if connection_id in conns]
        for session_id in sessions:
            self.detach(session_id, connection_id)
        return sessions
