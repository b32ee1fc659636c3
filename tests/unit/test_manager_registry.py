"""The executions registry stays bounded by count and by output bytes (no kernels)."""

from __future__ import annotations

import pytest

from icpy_kernels.config import Settings
from icpy_kernels.protocol.messages import parse_execute
from icpy_kernels.runtime import manager as manager_module
from icpy_kernels.runtime.execution import Execution
from icpy_kernels.runtime.manager import SessionManager


def execution(eid: str, output: int, finished: bool) -> Execution:
    req = parse_execute({"code": "x", "execution_id": eid}, default_timeout=5, max_timeout=5,
                        max_output_size=10**9)
    ex = Execution(req, "s", "python")
    ex.add_update({"kind": "stream", "name": "stdout", "text": "x" * output})
    if finished:
        ex.finish("completed")
    return ex


@pytest.mark.asyncio
async def test_oldest_finished_go_first_and_running_ones_stay(monkeypatch):
    monkeypatch.setattr(manager_module, "RECENT_EXECUTIONS", 3)
    monkeypatch.setattr(manager_module, "RECENT_OUTPUT_BYTES", 250)
    m = SessionManager(Settings(token="t"), languages=None, provider=None)  # type: ignore[arg-type]
    for eid, size, finished in [("running-old", 100, False), ("a", 100, True), ("b", 100, True),
                                ("c", 10, True)]:
        m.executions[eid] = execution(eid, size, finished)
        m._prune_executions()
    # Count cap 3 and byte cap 250: "a" (oldest finished) goes; the running one never does.
    assert list(m.executions) == ["running-old", "b", "c"]
    m.executions["d"] = execution("d", 120, True)
    m._prune_executions()
    assert list(m.executions) == ["running-old", "c", "d"]
