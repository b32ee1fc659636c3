"""The disk quota held while code runs: a task measures what a kernel can write and stops it at the limit.

Measuring after each execution misses writers that outlive it (a ``setsid`` daemon, a thread):
this watcher walks the kernel's writable directories in a worker thread, all the time the kernel
runs, and calls back once when their usage crosses the quota (the sandbox then kills every
process of the kernel). Overshoot is what the writers manage in one interval plus the kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

FLOOR = 0.2  # seconds between walks of a small workspace (thread hops are not free)
SPRINT = 0.05  # the shortest wait, when the growth rate says the limit is near
WALK_FACTOR = 10  # wait at least this many walks' time: a huge workspace costs < 10% of a core
GRACE = 1 << 20  # growth allowed to a kernel that starts over quota (its IPython history...)

Measure = Callable[[], int]


def enforcement(quota: int) -> dict[str, Any]:
    """How a disk quota is held, for a session's report and for /api/health: this watcher
    while code runs, then a check after each execution (and RLIMIT_FSIZE per file)."""
    return {"watch_interval": FLOOR,
            "enforced_by": ["watcher", "checked_after_execution"] if quota > 0 else []}
OnExceeded = Callable[[int], Awaitable[None]]


class QuotaWatcher:
    """Calls ``on_exceeded(used)`` once, when ``measure()`` (run in a thread) passes ``quota``.

    A kernel restarted after the watcher stopped it starts over quota: its files are still there.
    It must be able to run code that deletes them, so the limit is then the lowest usage seen
    plus ``GRACE`` (it may shrink, not grow), and the quota again once usage is back under it.
    """

    def __init__(self, measure: Measure, quota: int, on_exceeded: OnExceeded, *,
                 floor: float = FLOOR, sprint: float = SPRINT, walk_factor: float = WALK_FACTOR,
                 grace: int = GRACE) -> None:
        self.measure = measure
        self.quota = quota
        self.on_exceeded = on_exceeded
        self.floor, self.sprint, self.walk_factor, self.grace = floor, sprint, walk_factor, grace
        self.fired: int | None = None  # the usage that crossed the limit, once it has
        self.walks = 0
        self.longest_walk = 0.0
        self._lowest: int | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="disk-quota-watcher")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Idempotent; a no-op from inside ``on_exceeded`` (which runs in the watcher's task)."""
        task, self._task = self._task, None
        if task is None or task is asyncio.current_task():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def limit(self, used: int) -> int:
        self._lowest = used if self._lowest is None else min(self._lowest, used)
        return self.quota if self._lowest <= self.quota else self._lowest + self.grace

    def next_wait(self, walk: float, used: int, limit: int, rate: float) -> float:
        """Several walks' time apart, sooner when the growth rate reaches the limit first."""
        cost = self.walk_factor * walk
        wait = max(self.floor, cost)
        if rate > 0:
            wait = min(wait, max(self.sprint, cost, (limit - used) / rate))
        return wait

    async def _run(self) -> None:
        previous: tuple[float, int] | None = None
        try:
            while True:
                started = time.monotonic()
                used = await asyncio.to_thread(self.measure)
                now = time.monotonic()
                walk = now - started
                self.walks += 1
                self.longest_walk = max(self.longest_walk, walk)
                limit = self.limit(used)
                if used > limit:
                    self.fired = used
                    log.warning("disk quota: %d bytes over a limit of %d: stopping the kernel", used, limit)
                    await self.on_exceeded(used)
                    return
                rate = (used - previous[1]) / (now - previous[0]) if previous and now > previous[0] else 0.0
                previous = (now, used)
                await asyncio.sleep(self.next_wait(walk, used, limit, rate))
        except Exception:  # never silently: a dead watcher is a quota no longer held
            log.exception("disk quota watcher failed; the quota is checked after executions only")
