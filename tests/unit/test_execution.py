"""Execution state from scripted kernel messages: seq, outputs, truncation, result (no kernel)."""

from __future__ import annotations

import pytest

from icpy_kernels.protocol.messages import parse_execute
from icpy_kernels.runtime.execution import Execution


def make(max_output_size=10_000):
    req = parse_execute({"code": "x", "execution_id": "e1"}, default_timeout=5,
                        max_timeout=10, max_output_size=max_output_size)
    execution = Execution(req, "s1", "python")
    events = []
    execution.listeners.append(events.append)
    return execution, events


def iopub(msg_type, **content):
    return {"header": {"msg_type": msg_type}, "parent_header": {"msg_id": "m"}, "content": content}


@pytest.mark.asyncio
async def test_streams_merge_and_result_fields():
    ex, events = make()
    ex.on_iopub(iopub("status", execution_state="busy"))
    ex.on_iopub(iopub("execute_input", code="x", execution_count=3))
    ex.on_iopub(iopub("stream", name="stdout", text="a\nb"))
    ex.on_iopub(iopub("stream", name="stdout", text="c\n"))
    ex.on_iopub(iopub("stream", name="stderr", text="warn\n"))
    ex.on_iopub(iopub("execute_result", data={"text/plain": "42"}, metadata={}, execution_count=3))
    assert not ex.done.is_set()
    ex.on_iopub(iopub("status", execution_state="idle"))
    assert not ex.done.is_set()  # idle alone is not the end: the reply must come too
    ex.on_reply({"content": {"status": "ok", "execution_count": 3}})
    assert ex.done.is_set()
    result = ex.finish()
    assert [e["seq"] for e in events if e["type"] == "execution_update"] == [1, 2, 3, 4]
    assert result["output"] == ["a", "bc", "42"]
    assert result["errors"] == ["warn"]
    assert result["outputs"][0] == {"output_type": "stream", "name": "stdout", "text": "a\nbc\n"}
    assert result["status"] == "completed" and result["exit_code"] == 0
    assert result["execution_count"] == 3
    assert events[-1] is result
    assert ex.finish() is result  # idempotent


@pytest.mark.asyncio
async def test_error_makes_a_failed_result_with_exit_code_from_reply():
    ex, _ = make()
    ex.on_iopub(iopub("error", ename="ExitStatus", evalue="exit status 3", traceback=[]))
    ex.on_reply({"content": {"status": "error", "exit_code": 3, "restarted": True}})
    result = ex.finish()
    assert result["status"] == "failed" and result["exit_code"] == 3
    assert result["errors"] == ["ExitStatus: exit status 3"]
    assert result["kernel_restarted"] is True


@pytest.mark.asyncio
@pytest.mark.parametrize(("evalue", "status", "code"), [
    ("5", "failed", 5), ("0", "completed", 0), ("None", "completed", 0), ("bye", "failed", 1),
])
async def test_sys_exit_gives_the_status_python_would_exit_with(evalue, status, code):
    ex, _ = make()
    ex.on_iopub(iopub("error", ename="SystemExit", evalue=evalue, traceback=[]))
    ex.on_reply({"content": {"status": "error", "ename": "SystemExit", "evalue": evalue}})
    result = ex.finish()
    assert (result["status"], result["exit_code"]) == (status, code)
    assert result["error"]["ename"] == "SystemExit"  # still reported, as the kernel sent it


@pytest.mark.asyncio
async def test_truncation_cuts_at_the_limit_and_says_so():
    ex, events = make(max_output_size=10)
    ex.on_iopub(iopub("stream", name="stdout", text="12345"))
    ex.on_iopub(iopub("stream", name="stdout", text="6789abcdef"))
    ex.on_iopub(iopub("stream", name="stdout", text="never"))
    ex.on_iopub(iopub("error", ename="E", evalue="still kept", traceback=[]))
    result = ex.finish("completed")
    updates = [e["update"] for e in events if e["type"] == "execution_update"]
    stdout = "".join(u["text"] for u in updates if u.get("name") == "stdout")
    assert stdout == "123456789a"
    assert any("output truncated" in u.get("text", "") for u in updates if u.get("name") == "stderr")
    assert result["truncated"] is True
    assert result["error"]["evalue"] == "still kept"


@pytest.mark.asyncio
async def test_truncation_never_splits_a_utf8_character():
    ex, events = make(max_output_size=4)
    ex.on_iopub(iopub("stream", name="stdout", text="aé€"))  # 1 + 2 + 3 bytes
    stdout = [e["update"]["text"] for e in events if e["update"].get("name") == "stdout"]
    assert stdout == ["aé"]


@pytest.mark.asyncio
async def test_clear_output_and_display_updates_shape_outputs():
    ex, _ = make()
    ex.on_iopub(iopub("display_data", data={"text/plain": "v1"}, metadata={}, transient={"display_id": "d"}))
    ex.on_iopub(iopub("update_display_data", data={"text/plain": "v2"}, metadata={}, transient={"display_id": "d"}))
    result_before = ex.snapshot()
    assert result_before["status"] == "running"
    assert result_before["outputs"] == [{"output_type": "display_data", "data": {"text/plain": "v2"}, "metadata": {}}]
    ex.on_iopub(iopub("clear_output", wait=False))
    ex.on_iopub(iopub("stream", name="stdout", text="x"))
    ex.on_iopub(iopub("clear_output", wait=True))
    assert ex.snapshot()["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "x"}]
    ex.on_iopub(iopub("stream", name="stdout", text="y"))
    assert ex.finish("completed")["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "y"}]


@pytest.mark.asyncio
async def test_output_lines_split_on_newlines_only():
    ex, _ = make()
    ex.on_iopub(iopub("stream", name="stdout", text="a\u2028b\x1cc\r\nd\n\ne"))
    assert ex.finish("completed")["output"] == ["a\u2028b\x1cc", "d", "", "e"]


@pytest.mark.asyncio
async def test_a_failing_listener_does_not_starve_the_others():
    ex, events = make()
    seen = []

    def broken(event):
        raise RuntimeError("listener bug")

    ex.listeners.insert(0, broken)
    ex.listeners.append(seen.append)
    ex.on_iopub(iopub("stream", name="stdout", text="x"))
    result = ex.finish("completed")
    assert [e["type"] for e in seen] == ["execution_update", "execution_result"]
    assert events[-1] is result
