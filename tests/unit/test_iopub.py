"""IOPub -> update translation and update -> nbformat output (pure, scripted messages)."""

from __future__ import annotations

from icpy_kernels.protocol.iopub import parent_id, to_output, translate


def msg(msg_type, content, parent="p1"):
    return {"header": {"msg_type": msg_type}, "parent_header": {"msg_id": parent}, "content": content}


def test_stream():
    u = translate(msg("stream", {"name": "stderr", "text": "oops\n"}))
    assert u == {"kind": "stream", "name": "stderr", "text": "oops\n"}
    assert to_output(u) == {"output_type": "stream", "name": "stderr", "text": "oops\n"}


def test_execute_result():
    u = translate(msg("execute_result", {"data": {"text/plain": "2"}, "metadata": {}, "execution_count": 4}))
    assert u == {"kind": "result", "data": {"text/plain": "2"}, "metadata": {}, "execution_count": 4}
    assert to_output(u)["output_type"] == "execute_result"
    assert to_output(u)["execution_count"] == 4


def test_display_and_update():
    d = translate(msg("display_data", {"data": {"text/html": "<b>"}, "metadata": {}, "transient": {"display_id": "x"}}))
    assert d == {"kind": "display", "data": {"text/html": "<b>"}, "metadata": {}, "display_id": "x", "update": False}
    assert to_output(d) == {"output_type": "display_data", "data": {"text/html": "<b>"}, "metadata": {}}
    up = translate(msg("update_display_data", {"data": {}, "metadata": {}, "transient": {"display_id": "x"}}))
    assert up["update"] is True and up["display_id"] == "x"
    assert to_output(up) is None  # an update changes an earlier output, it adds none
    plain = translate(msg("display_data", {"data": {"text/plain": "p"}, "metadata": {}}))
    assert plain["display_id"] is None


def test_error_and_clear_output():
    e = translate(msg("error", {"ename": "E", "evalue": "v", "traceback": ["t1", "t2"]}))
    assert e == {"kind": "error", "ename": "E", "evalue": "v", "traceback": ["t1", "t2"]}
    assert to_output(e) == {"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["t1", "t2"]}
    c = translate(msg("clear_output", {"wait": True}))
    assert c == {"kind": "clear_output", "wait": True} and to_output(c) is None


def test_messages_without_output_translate_to_none():
    for msg_type in ("status", "execute_input", "comm_open", "comm_msg", "shutdown_reply"):
        assert translate(msg(msg_type, {})) is None


def test_parent():
    assert parent_id(msg("stream", {}, parent="abc")) == "abc"
    assert parent_id({"parent_header": {}}) is None
