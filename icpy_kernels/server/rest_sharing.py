"""REST for shared sessions: the broadcast as an ndjson stream, and resuming an execution's events."""

from __future__ import annotations

import asyncio
from typing import Any

from tornado import web

from ..errors import IcpyError, SlowConsumer
from ..protocol import events
from ..protocol.sharing import parse_resume, parse_topics
from .rest import NdjsonHandler, route_id

OVERFLOW: dict[str, Any] = {"type": "overflow"}  # a marker in the queue, never written


class QueuedNdjsonHandler(NdjsonHandler):
    """An ndjson stream fed through ``self.queue``; the writer loop wakes when the client leaves."""

    queue: asyncio.Queue[dict[str, Any] | None] | None = None

    def on_connection_close(self) -> None:
        super().on_connection_close()
        if self.queue is not None:
            self.queue.put_nowait(None)


class EventsHandler(QueuedNdjsonHandler):
    """``GET /api/events?topics=a.*,b.*``: ``subscribed``, then every matching broadcast event.

    Events wait in a queue of ``send_queue_size``; when a client reads so slowly that it is
    full, it is unsubscribed, gets a ``slow_consumer`` error line after what fit, and the
    response ends (a client that still reads nothing is cut off after ``ws_ping_interval``).
    """

    async def get(self) -> None:
        raw = [t.strip() for arg in self.queries("topics") for t in arg.split(",")]
        topics = parse_topics({"topics": [t for t in raw if t] or None},
                              self.config.max_subscriptions_per_connection)
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.subscription = self.service.hub.bus.subscribe(self._deliver, topics)
        try:
            await self._pump(topics)
        finally:
            self.subscription.close()
        if not self.gone:
            self.finish()

    async def _pump(self, topics: list[str]) -> None:
        subscribed = {"type": "subscribed", "topics": sorted(topics), "timestamp": events.now()}
        if not await self.write_line(subscribed):
            return
        while True:
            try:
                event = await asyncio.wait_for(self.queue.get(), self.config.keepalive_interval)
            except TimeoutError:
                event = {"type": "keepalive", "timestamp": events.now()}
            if event is None:
                return
            if event is OVERFLOW:
                await self.write_line(events.error(SlowConsumer(
                    "This client reads too slowly: it was unsubscribed (more than "
                    f"{self.config.send_queue_size} events waited)", topics=sorted(topics), sessions=[])))
                return
            if not await self.write_line(event):
                return

    def _deliver(self, topic: str, event: dict[str, Any]) -> None:
        """Called by the bus (synchronously, from kernel readers): enqueue or give up."""
        if self.gone:
            return
        if self.queue.qsize() < self.config.send_queue_size:
            self.queue.put_nowait(event)
            return
        self.subscription.close()
        self.queue.put_nowait(OVERFLOW)
        grace = self.config.ws_ping_interval or 30.0
        asyncio.get_running_loop().call_later(grace, self._cut_off)

    def _cut_off(self) -> None:
        if not self._finished and not self.gone:
            self.request.connection.stream.close()  # the flush waiting on it fails


class ExecutionEventsHandler(QueuedNdjsonHandler):
    """``GET /api/executions/{id}/events?after_seq=N``: ``resumed``, the updates after N, the
    live ones (``keepalive`` after quiet), then the result: ``resume`` as ndjson."""

    async def get(self, execution_id: str) -> None:
        execution_id, after_seq = parse_resume(
            {"execution_id": execution_id, "after_seq": self.query("after_seq")})
        self.queue = asyncio.Queue()

        def listener(event: dict[str, Any]) -> None:
            if not self.gone:  # a client that left costs nothing until the execution ends
                self.queue.put_nowait(event)

        task = asyncio.ensure_future(self.service.resume(execution_id, after_seq, listener))
        task.add_done_callback(lambda _: self.queue.put_nowait(None))
        while not self.gone:
            # Keepalives once the stream has begun (a queued execution is quiet for a while).
            quiet = self.config.keepalive_interval if self._headers_written else None
            try:
                event = await asyncio.wait_for(self.queue.get(), quiet)
            except TimeoutError:
                event = events.keepalive(execution_id)
            if event is None:
                break
            if not await self.write_line(event):
                return
        if self.gone:
            return
        exc = task.exception()
        if exc is not None:
            if not self._headers_written:
                raise exc  # e.g. execution_not_found: a plain HTTP error
            if isinstance(exc, IcpyError):
                exc.details.setdefault("execution_id", execution_id)
                await self.write_line(events.error(exc))
        self.finish()


def routes(deps: dict[str, Any]) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    """Described in ``openapi.document()`` next to the other REST routes."""
    table: list[tuple[str, type[web.RequestHandler]]] = [
        (r"/api/events", EventsHandler),
        (r"/api/executions/" + route_id("execution_id") + r"/events", ExecutionEventsHandler),
    ]
    return [(pattern, handler, deps) for pattern, handler in table]
