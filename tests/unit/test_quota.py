"""The disk quota watcher, without kernels: fake measures and a temporary directory."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from icpy_kernels.provisioning.quota import QuotaWatcher
from icpy_kernels.provisioning.safefs import total_usage

FAST = dict(floor=0.01, sprint=0.005)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[int] = []
        self.fired = asyncio.Event()

    async def __call__(self, used: int) -> None:
        self.calls.append(used)
        self.fired.set()


def series(*values: int):
    """A measure that returns ``values`` in turn, then repeats the last one."""
    it = iter(values)
    last = [values[0]]

    def measure() -> int:
        last[0] = next(it, last[0])
        return last[0]
    return measure


@pytest.mark.asyncio
async def test_fires_once_when_the_quota_is_crossed():
    cb = Recorder()
    watcher = QuotaWatcher(series(0, 50, 100, 101, 500), 100, cb, **FAST)
    watcher.start()
    await asyncio.wait_for(cb.fired.wait(), 2)
    await asyncio.sleep(0.05)
    assert cb.calls == [101] and watcher.fired == 101
    assert not watcher.running  # it ends after firing: the kernel is gone
    await watcher.stop()


@pytest.mark.asyncio
async def test_stops_cleanly_without_firing():
    cb = Recorder()
    watcher = QuotaWatcher(series(10), 100, cb, **FAST)
    watcher.start()
    await asyncio.sleep(0.05)
    assert watcher.running and watcher.walks >= 2
    await watcher.stop()
    await watcher.stop()  # idempotent
    assert not watcher.running and cb.calls == [] and watcher.fired is None


@pytest.mark.asyncio
async def test_stop_from_the_callback_does_not_cancel_it():
    done = asyncio.Event()

    async def on_exceeded(used: int) -> None:
        await watcher.stop()  # the sandbox's kill() stops the watcher that called it
        done.set()

    watcher = QuotaWatcher(series(0, 200), 100, on_exceeded, **FAST)
    watcher.start()
    await asyncio.wait_for(done.wait(), 2)


@pytest.mark.asyncio
async def test_a_kernel_restarted_over_quota_may_shrink_but_not_grow():
    cb = Recorder()
    grace = 10
    # Starts at 150 (its files outlived the stop), deletes down to 120, then grows by more
    # than the grace: stopped at 131, never for the 125 in between.
    watcher = QuotaWatcher(series(150, 120, 125, 131), 100, cb, grace=grace, **FAST)
    watcher.start()
    await asyncio.wait_for(cb.fired.wait(), 2)
    assert cb.calls == [131]
    assert watcher.limit(90) == 100  # back under the quota: the quota is the limit again


@pytest.mark.asyncio
async def test_measuring_does_not_block_the_loop():
    def slow_measure() -> int:
        time.sleep(0.3)  # a huge workspace's walk
        return 0

    watcher = QuotaWatcher(slow_measure, 100, Recorder(), **FAST)
    watcher.start()
    gaps, last = [], time.monotonic()
    for _ in range(20):
        await asyncio.sleep(0.02)
        now = time.monotonic()
        gaps.append(now - last)
        last = now
    await watcher.stop()
    assert max(gaps) < 0.15, gaps
    assert watcher.longest_walk >= 0.3


def test_waits_follow_the_walk_cost_and_the_growth_rate():
    w = QuotaWatcher(lambda: 0, 100 << 20, Recorder(), floor=0.2, sprint=0.05, walk_factor=10)
    assert w.next_wait(0.001, 0, 100 << 20, 0.0) == 0.2  # small workspace: the floor
    assert w.next_wait(0.5, 0, 100 << 20, 0.0) == 5.0  # huge one: ten walks apart
    # 10 MiB of headroom at 100 MiB/s: look again in 0.1 s, not 0.2 s...
    assert w.next_wait(0.001, 90 << 20, 100 << 20, 100 << 20) == pytest.approx(0.1)
    # ...and never sooner than the sprint, nor than ten walks.
    assert w.next_wait(0.001, 99 << 20, 100 << 20, 1 << 30) == 0.05
    assert w.next_wait(0.02, 99 << 20, 100 << 20, 1 << 30) == pytest.approx(0.2)


@pytest.mark.asyncio
async def test_a_directory_filled_past_its_quota(tmp_path: Path):
    cb = Recorder()
    watcher = QuotaWatcher(lambda: total_usage([tmp_path]), 1 << 20, cb, **FAST)
    watcher.start()
    (tmp_path / "sub").mkdir()
    for i in range(4):
        (tmp_path / "sub" / f"f{i}").write_bytes(b"x" * (300 << 10))
        await asyncio.sleep(0.03)
    await asyncio.wait_for(cb.fired.wait(), 2)
    assert cb.calls[0] > 1 << 20
    await watcher.stop()


@pytest.mark.asyncio
async def test_a_failing_measure_ends_the_watcher_loudly(caplog):
    def broken() -> int:
        raise PermissionError("denied")

    watcher = QuotaWatcher(broken, 100, Recorder(), **FAST)
    watcher.start()
    await asyncio.sleep(0.05)
    assert not watcher.running
    assert "disk quota watcher failed" in caplog.text
