"""Output a kernel sends under a cell after its result reaches the client still listening,
subscribers and the stored execution, marked late (scripted kernel, in-memory history)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from icpy_kernels.events import hub as hub_module
from icpy_kernels.events.hub import Hub
from icpy_kernels.history.store import HistoryStore
from icpy_kernels.service import Service

from .fakekernel import cell


@pytest.mark.asyncio
async def test_late_output_reaches_listeners_subscribers_result_and_history(fake_service, monkeypatch):
    monkeypatch.setattr(hub_module, "LATE_FLUSH", 0)
    service, provider = fake_service
    store = HistoryStore(":memory:")
    await store.open()
    service = Service(service.manager, Hub(store=store))
    seen: list[dict[str, Any]] = []
    broadcast: list[dict[str, Any]] = []
    late = asyncio.Event()
    service.hub.bus.subscribe(lambda topic, event: broadcast.append(event)).add(["code_execution.*"])

    def listener(event: dict[str, Any]) -> None:
        seen.append(event)
        if event.get("late") and "late log" in event["update"].get("text", ""):
            late.set()

    await service.create_session({"session_id": "s1"})
    provider.kernels[0].script = lambda code: cell(
        (0, "stream", {"name": "stdout", "text": "now\n"}),
        after=[(0.05, "iopub", "stream", {"name": "stdout", "text": "late log\n"}),
               (0, "iopub", "error", {"ename": "Error", "evalue": "from a timer", "traceback": []})])
    request = service.parse_execute({"code": "x", "session_id": "s1"})
    execution = await service.execute(request, None, [listener])
    assert execution.result["output"] == ["now"]
    await asyncio.wait_for(late.wait(), 5)
    await asyncio.sleep(0.05)  # the late error, then the store write (LATE_FLUSH is 0 here)
    kinds = [(e["type"], e.get("seq"), e.get("late")) for e in seen]
    assert kinds[-4:] == [("execution_update", 1, None), ("execution_result", None, None),
                          ("execution_update", 2, True), ("execution_update", 3, True)]
    late_broadcast = [e for e in broadcast if e.get("late")]
    assert [e["seq"] for e in late_broadcast] == [2, 3] and late_broadcast[0]["status"] == "completed"
    for result in (await service.get_result(request.execution_id), await store.get_result(request.execution_id)):
        assert result["status"] == "completed" and result["error"] is None  # as the result said
        assert result["output"] == ["now", "late log"]
        assert result["outputs"][-1]["output_type"] == "error"
    stored = await store.get_updates(request.execution_id)
    assert [u["seq"] for u in stored] == [1, 2, 3] and stored[1]["late"] is True
    await store.close()


@pytest.mark.asyncio
async def test_late_routing_is_bounded_per_session(fake_service, monkeypatch):
    from icpy_kernels.runtime import router

    monkeypatch.setattr(router, "LATE_KEPT", 2)
    service, _ = fake_service
    executions = []
    for _ in range(3):
        request = service.parse_execute({"code": "x", "session_id": "s1"})
        executions.append(await service.execute(request, None, [lambda event: None]))
    # The oldest no longer takes late output: it let go of its listeners.
    assert [len(e.listeners) for e in executions] == [0, 2, 2]
