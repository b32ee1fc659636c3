"""Background tasks nobody awaits: kept referenced until done, their failures logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

# asyncio keeps only weak references to tasks: one nobody holds can vanish mid-way.
_running: set[asyncio.Task[Any]] = set()


def background(coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(coro)
    _running.add(task)

    def done(t: asyncio.Task[Any]) -> None:
        _running.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("background task failed: %s", what, exc_info=t.exception())

    task.add_done_callback(done)
    return task
