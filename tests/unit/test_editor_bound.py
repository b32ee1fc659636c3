"""Editor requests are answered within their bound (2 s) whatever holds the kernel: a run, a
restart, or a backlog of other editor requests (scripted kernels, no process)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from icpy_kernels import service as service_module

from .fakekernel import cell

BOUND = 0.5  # the 2 s of EDITOR_BUSY_WAIT, scaled down: every wait below is relative to it


@pytest.fixture
def bounded(fake_service: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(service_module, "EDITOR_BUSY_WAIT", BOUND)
    return fake_service


async def burst(service: Any, n: int = 20) -> list[tuple[float, dict[str, Any]]]:
    """``n`` concurrent complete/inspect requests; each one's (seconds taken, reply)."""
    async def one(i: int) -> tuple[float, dict[str, Any]]:
        start = time.monotonic()
        kind = "complete" if i % 2 else "inspect"
        reply = await service.editor(kind, {"session_id": "s1", "code": f"x{i}"}, None)
        return time.monotonic() - start, reply

    return await asyncio.gather(*(one(i) for i in range(n)))


async def started(service: Any) -> Any:
    await service.create_session({"session_id": "s1"})
    return service.manager.get("s1").handle


@pytest.mark.asyncio
async def test_a_backlog_of_slow_editor_requests_on_an_idle_kernel_keeps_the_bound(bounded):
    service, _ = bounded
    kernel = await started(service)
    kernel.editor_delay = BOUND * 0.4  # 20 in turn: the last would wait 8x the bound
    replies = await burst(service)
    assert max(t for t, _ in replies) < BOUND * 1.5
    assert replies[0][1]["busy"] is False  # the first in line is answered by the kernel...
    assert any(r["busy"] for _, r in replies)  # ...those it cannot reach in time are not waited for


@pytest.mark.asyncio
async def test_a_kernel_that_restarts_keeps_the_bound(bounded):
    service, _ = bounded
    kernel = await started(service)
    kernel.restart_delay = BOUND * 6
    restart = asyncio.ensure_future(service.restart_session("s1"))
    await asyncio.sleep(0.01)
    replies = await burst(service)
    assert max(t for t, _ in replies) < BOUND * 1.5 and all(r["busy"] for _, r in replies)
    assert (await restart)["restarts"] == 1
    _, reply = (await burst(service, 1))[0]
    assert reply["busy"] is False


@pytest.mark.asyncio
async def test_a_busy_kernel_keeps_the_bound_and_an_idle_one_answers(bounded):
    service, _ = bounded
    kernel = await started(service)
    kernel.script = lambda code: cell((BOUND * 6, "stream", {"name": "stdout", "text": "done\n"}))
    run = asyncio.ensure_future(service.execute(service.parse_execute({"code": "sleep", "session_id": "s1"}), None, []))
    await asyncio.sleep(0.05)
    replies = await burst(service)
    assert max(t for t, _ in replies) < BOUND * 1.5 and all(r["busy"] for _, r in replies)
    await run
    _, reply = (await burst(service, 1))[0]
    assert reply["busy"] is False


@pytest.mark.asyncio
async def test_a_request_alone_on_an_idle_kernel_waits_for_a_slow_answer(bounded):
    service, _ = bounded
    kernel = await started(service)
    kernel.editor_delay = BOUND * 2  # a cold completer: the kernel answers nothing else
    duration, reply = (await burst(service, 1))[0]
    assert reply["busy"] is False and duration >= BOUND * 2
    # Behind the requests it gave up on, the next one keeps the bound.
    replies = await burst(service, 4)
    duration, reply = (await burst(service, 1))[0]
    assert reply["busy"] is True and duration < BOUND * 1.5
    assert [r["busy"] for _, r in replies] == [False, True, True, True]
