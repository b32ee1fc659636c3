"""Editor requests (complete, inspect, is_complete, input_reply): validation and reply shapes (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ValidationError
from .messages import optional_id, whole_number

EDITOR_KINDS = ("complete", "inspect", "is_complete")


@dataclass(frozen=True)
class EditorRequest:
    kind: str  # complete | inspect | is_complete
    code: str
    cursor_pos: int
    detail_level: int
    session_id: str | None
    language: str | None


def request_id(message: dict[str, Any]) -> Any:
    """The client's correlation id, echoed verbatim; only JSON scalars are accepted."""
    value = message.get("request_id")
    if value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool)):
        return value
    raise ValidationError("'request_id' must be a string or a number", field="request_id")


def parse_editor(kind: str, message: dict[str, Any]) -> EditorRequest:
    """Validate a complete / inspect / is_complete message (or JSON-RPC params / REST body)."""
    if kind not in EDITOR_KINDS:
        raise ValueError(kind)
    code = message.get("code")
    if not isinstance(code, str):
        raise ValidationError("'code' must be a string", field="code")
    session_id = optional_id(message, "session_id")
    language = message.get("language")
    if language is not None and (not isinstance(language, str) or not language):
        raise ValidationError("'language' must be a non-empty string", field="language")
    if session_id is None and language is None:
        raise ValidationError(f"{kind} needs 'session_id' or 'language'", field="session_id")
    cursor_pos = len(code)  # is_complete has no cursor
    if kind != "is_complete":
        # Jupyter counts the cursor in unicode code points, as Python's len() does.
        pos = whole_number(message.get("cursor_pos", len(code)))
        if pos is None or pos < 0:
            raise ValidationError("'cursor_pos' must be an integer >= 0", field="cursor_pos")
        # Past the end means at the end: an editor counting UTF-16 units (JavaScript, LSP) is
        # past it after an astral character, and a kernel given such a cursor may fail or raise.
        # Clamping, not refusing, also keeps the rule one a schema can state (no cross-field bound).
        cursor_pos = min(pos, len(code))
    detail_level = whole_number(message.get("detail_level", 0))
    if detail_level not in (0, 1):
        raise ValidationError("'detail_level' must be 0 or 1", field="detail_level")
    return EditorRequest(kind, code, cursor_pos, detail_level, session_id, language)


def empty_reply(request: EditorRequest) -> dict[str, Any]:
    """What an editor gets when the kernel could not answer (busy, or it failed)."""
    if request.kind == "complete":
        return {"matches": [], "cursor_start": request.cursor_pos, "cursor_end": request.cursor_pos,
                "metadata": {}}
    if request.kind == "inspect":
        return {"found": False, "data": {}, "metadata": {}}
    return {"status": "unknown", "indent": ""}


def editor_reply(request: EditorRequest, content: dict[str, Any] | None) -> dict[str, Any]:
    """The reply fields from a kernel's ``*_reply`` content; ``None`` means the kernel was busy.

    Only the documented fields pass, with their types enforced, so a kernel's quirks (a
    missing ``metadata``, an ``error`` status) never reach an editor as a different shape.
    """
    reply = empty_reply(request)
    if content is None:
        return {**reply, "busy": True}
    # is_complete_reply's ``status`` is the answer; the others use it for ok / error.
    if request.kind != "is_complete" and content.get("status", "ok") != "ok":
        return {**reply, "busy": False, "kernel_error": {
            "ename": str(content.get("ename", "")), "evalue": str(content.get("evalue", ""))}}
    if request.kind == "complete":
        matches = content.get("matches")
        reply["matches"] = [m for m in matches if isinstance(m, str)] if isinstance(matches, list) else []
        for key in ("cursor_start", "cursor_end"):
            if isinstance(content.get(key), int):
                reply[key] = content[key]
    elif request.kind == "inspect":
        reply["found"] = bool(content.get("found", False))
        if isinstance(content.get("data"), dict):
            reply["data"] = content["data"]
    else:
        if content.get("status") in ("complete", "incomplete", "invalid", "unknown"):
            reply["status"] = content["status"]
        if reply["status"] == "incomplete" and isinstance(content.get("indent"), str):
            reply["indent"] = content["indent"]
    if request.kind != "is_complete" and isinstance(content.get("metadata"), dict):
        reply["metadata"] = content["metadata"]
    return {**reply, "busy": False}


def parse_input_reply(message: dict[str, Any]) -> tuple[str, str]:
    """Validate an ``input_reply``: the execution it answers and the line typed."""
    execution_id = optional_id(message, "execution_id")
    if execution_id is None:
        raise ValidationError("input_reply needs 'execution_id'", field="execution_id")
    value = message.get("value")
    if not isinstance(value, str):
        raise ValidationError("'value' must be a string", field="value", execution_id=execution_id)
    return execution_id, value
