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
    def run(eid: str, size: int, finished: bool = True) -> None:
        m.executions[eid] = ex = execution(eid, size, finished)
        if finished:
            m.finished(ex)

    run("running-old", 100, finished=False)
    for eid, size in [("a", 100), ("b", 100), ("c", 10)]:
        run(eid, size)
    # Count cap 3: "a" (oldest finished) goes; the running one never does.
    assert list(m.executions) == ["running-old", "b", "c"]
    run("d", 120)
    assert list(m.executions) == ["running-old", "c", "d"]
    # Byte cap 250 over finished outputs (c + d = 130): a 200-byte one pushes out the oldest two.
    run("e", 200)
    assert list(m.executions) == ["running-old", "e"]
    assert m._finished_bytes == 200
    # A running execution is counted when it finishes (200 + 100 > 250: it goes, oldest)...
    late = m.executions["running-old"]
    late.finish("completed")
    m.finished(late)
    assert list(m.executions) == ["e"] and m._finished_bytes == 200
    # ...and one no longer in the registry is not counted again.
    m.finished(late)
    assert m._finished_bytes == 200
