"""A session's shell requests besides executions: replies matched by msg_id, and the editor
requests (complete, inspect, is_complete) answered within their bound whatever the kernel does."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

SILENT_TIMEOUT = 15.0  # bound on our own bookkeeping snippets, and on a kernel answering one request

Reply = dict[str, Any]


class ShellRequests:
    """Owns the futures of the requests in flight on one kernel's shell channel."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._waiters: dict[str, asyncio.Future[Reply]] = {}
        # Editor requests the kernel has not answered yet, those we gave up on included: it
        # still answers them, in turn, before a new one.
        self._unanswered: set[str] = set()

    def deliver(self, msg: Reply, msg_id: str) -> bool:
        """Hand a shell reply to its waiter; False when nobody waits for it (an execution's
        reply, or an editor request's that came too late and is dropped)."""
        self._unanswered.discard(msg_id)
        waiter = self._waiters.pop(msg_id, None)
        if waiter is None:
            return False
        if not waiter.done():
            waiter.set_result(msg)
        return True

    def fail_all(self) -> None:
        """The kernel connection closed: no reply will come."""
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(ConnectionError("kernel connection closed"))
        self._waiters.clear()
        self._unanswered.clear()

    def _expect(self, msg_id: str) -> asyncio.Future[Reply]:
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiters[msg_id] = future
        return future

    async def request(self, send: Callable[[], str], wait: float = SILENT_TIMEOUT) -> Reply:
        """Send one shell request (``send`` returns its msg_id) and await its reply."""
        msg_id = send()
        try:
            return await asyncio.wait_for(self._expect(msg_id), wait)
        finally:
            self._waiters.pop(msg_id, None)

    async def editor(self, ready: Callable[[], Awaitable[None]], send: Callable[[], str],
                     busy: Callable[[], bool], busy_wait: float) -> Reply | None:
        """An editor's request: its reply's content, or None (answered ``busy``) when the kernel
        cannot answer within ``busy_wait`` seconds of the request.

        The kernel answers shell requests one at a time, after the code it runs: behind an
        execution, a start or restart, or other editor requests (an editor sends one per
        keystroke), a reply can take any time, so the server keeps the bound itself. Only a
        request the kernel answers alone (idle, nothing ahead of it: a cold completer may take
        seconds) waits longer, up to ``SILENT_TIMEOUT``, unless the session turns busy meanwhile.
        ``ready`` starts the kernel (or waits for its restart); a reply arriving later finds
        no waiter and is dropped.
        """
        deadline = time.monotonic() + busy_wait
        starting = asyncio.ensure_future(ready())
        done, _ = await asyncio.wait({starting}, timeout=busy_wait)
        if not done:
            # Someone else's start or restart holds the kernel: it carries on without us.
            starting.add_done_callback(lambda task: task.cancelled() or task.exception())
            log.debug("%s: editor request answered busy (kernel starting)", self.label)
            return None
        starting.result()
        if not busy() and not self._unanswered:  # alone
            deadline = time.monotonic() + SILENT_TIMEOUT
        msg_id = send()
        future = self._expect(msg_id)
        self._unanswered.add(msg_id)
        try:
            while True:
                wait = min(busy_wait, deadline - time.monotonic())
                try:
                    return (await asyncio.wait_for(asyncio.shield(future), max(wait, 0)))["content"]
                except TimeoutError:
                    if busy() or time.monotonic() >= deadline:
                        log.debug("%s: editor request %s answered busy", self.label, msg_id)
                        return None
        finally:
            self._waiters.pop(msg_id, None)
