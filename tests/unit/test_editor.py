"""Editor requests: validation and reply shaping (pure, no kernel)."""

from __future__ import annotations

import pytest

from icpy_kernels.errors import ValidationError
from icpy_kernels.protocol.editor import editor_reply, parse_editor, parse_input_reply, request_id


def test_parse_defaults_cursor_to_the_end_in_code_points():
    req = parse_editor("complete", {"code": "é = 1; é", "session_id": "s"})
    assert req.cursor_pos == 8 and req.detail_level == 0 and req.language is None
    req = parse_editor("inspect", {"code": "len", "language": "python", "cursor_pos": 0, "detail_level": 1})
    assert (req.cursor_pos, req.detail_level, req.session_id, req.language) == (0, 1, None, "python")


@pytest.mark.parametrize("message, field", [
    ({"code": "x"}, "session_id"),
    ({"session_id": "s"}, "code"),
    ({"session_id": "s", "code": 1}, "code"),
    ({"session_id": "bad id!", "code": "x"}, "session_id"),
    ({"language": "", "code": "x"}, "language"),
    ({"session_id": "s", "code": "abc", "cursor_pos": -1}, "cursor_pos"),
    ({"session_id": "s", "code": "abc", "cursor_pos": True}, "cursor_pos"),
    ({"session_id": "s", "code": "abc", "cursor_pos": 1.5}, "cursor_pos"),
    ({"session_id": "s", "code": "abc", "detail_level": 2}, "detail_level"),
    ({"session_id": "s", "code": "abc", "detail_level": True}, "detail_level"),
])
def test_parse_rejects(message, field):
    with pytest.raises(ValidationError) as info:
        parse_editor("complete", message)
    assert info.value.field == field


def test_cursor_past_the_end_is_clamped_to_it():
    for kind in ("complete", "inspect"):
        assert parse_editor(kind, {"session_id": "s", "code": "abc", "cursor_pos": 4}).cursor_pos == 3
        assert parse_editor(kind, {"session_id": "s", "code": "", "cursor_pos": 10**30}).cursor_pos == 0
        assert parse_editor(kind, {"session_id": "s", "code": "é😀", "cursor_pos": 3}).cursor_pos == 2


def test_integral_floats_are_integers():
    # JSON Schema's "integer" (the OpenAPI document's) includes 3.0; a JavaScript client may send it.
    req = parse_editor("inspect", {"session_id": "s", "code": "abc", "cursor_pos": 2.0, "detail_level": 1.0})
    assert (req.cursor_pos, req.detail_level) == (2, 1) and type(req.cursor_pos) is type(req.detail_level) is int


def test_is_complete_ignores_cursor_pos():
    assert parse_editor("is_complete", {"session_id": "s", "code": "x", "cursor_pos": 99}).code == "x"


def test_request_id_is_a_scalar():
    assert request_id({}) is None
    assert request_id({"request_id": "a"}) == "a"
    assert request_id({"request_id": 7}) == 7
    for bad in ({"x": 1}, [1], True):
        with pytest.raises(ValidationError):
            request_id({"request_id": bad})


def test_complete_reply_keeps_only_documented_fields():
    req = parse_editor("complete", {"session_id": "s", "code": "import o"})
    content = {"status": "ok", "matches": ["os", 3, "operator"], "cursor_start": 7, "cursor_end": 8,
               "metadata": {"_jupyter_types_experimental": []}, "extra": 1}
    assert editor_reply(req, content) == {
        "matches": ["os", "operator"], "cursor_start": 7, "cursor_end": 8,
        "metadata": {"_jupyter_types_experimental": []}, "busy": False,
    }
    # A kernel that leaves fields out still gives the full shape.
    assert editor_reply(req, {"status": "ok"}) == {
        "matches": [], "cursor_start": 8, "cursor_end": 8, "metadata": {}, "busy": False}


def test_busy_and_error_replies_are_empty():
    req = parse_editor("inspect", {"session_id": "s", "code": "len", "cursor_pos": 2})
    assert editor_reply(req, None) == {"found": False, "data": {}, "metadata": {}, "busy": True}
    assert editor_reply(req, {"status": "error", "ename": "E", "evalue": "v", "traceback": []}) == {
        "found": False, "data": {}, "metadata": {}, "busy": False,
        "kernel_error": {"ename": "E", "evalue": "v"}}
    req = parse_editor("is_complete", {"session_id": "s", "code": "x"})
    assert editor_reply(req, None) == {"status": "unknown", "indent": "", "busy": True}


def test_is_complete_reply_status_is_the_answer():
    req = parse_editor("is_complete", {"session_id": "s", "code": "for i in x:"})
    assert editor_reply(req, {"status": "incomplete", "indent": "    "}) == {
        "status": "incomplete", "indent": "    ", "busy": False}
    assert editor_reply(req, {"status": "complete", "indent": "  "}) == {
        "status": "complete", "indent": "", "busy": False}  # indent only means something when incomplete
    assert editor_reply(req, {"status": "weird"})["status"] == "unknown"


def test_inspect_reply():
    req = parse_editor("inspect", {"session_id": "s", "code": "len"})
    assert editor_reply(req, {"status": "ok", "found": True, "data": {"text/plain": "doc"}, "metadata": {}}) == {
        "found": True, "data": {"text/plain": "doc"}, "metadata": {}, "busy": False}


def test_parse_input_reply():
    assert parse_input_reply({"execution_id": "e1", "value": ""}) == ("e1", "")
    with pytest.raises(ValidationError) as info:
        parse_input_reply({"value": "x"})
    assert info.value.field == "execution_id"
    with pytest.raises(ValidationError) as info:
        parse_input_reply({"execution_id": "e1", "value": None})
    assert info.value.field == "value" and info.value.details["execution_id"] == "e1"
