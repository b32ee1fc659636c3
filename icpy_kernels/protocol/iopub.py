"""IOPub message -> execution update, and update -> nbformat v4 output (pure functions)."""

from __future__ import annotations

from typing import Any

Update = dict[str, Any]


def translate(msg: dict[str, Any]) -> Update | None:
    """One IOPub message to one ``update``; None for messages that carry no output
    (status, execute_input, comm traffic...)."""
    msg_type = msg.get("header", {}).get("msg_type") or msg.get("msg_type")
    content = msg.get("content", {})
    if msg_type == "stream":
        return {"kind": "stream", "name": content.get("name", "stdout"), "text": content.get("text", "")}
    if msg_type == "execute_result":
        return {
            "kind": "result",
            "data": content.get("data", {}),
            "metadata": content.get("metadata", {}),
            "execution_count": content.get("execution_count"),
        }
    if msg_type in ("display_data", "update_display_data"):
        transient = content.get("transient") or {}
        return {
            "kind": "display",
            "data": content.get("data", {}),
            "metadata": content.get("metadata", {}),
            "display_id": transient.get("display_id"),
            "update": msg_type == "update_display_data",
        }
    if msg_type == "error":
        return {
            "kind": "error",
            "ename": content.get("ename", ""),
            "evalue": content.get("evalue", ""),
            "traceback": list(content.get("traceback", [])),
        }
    if msg_type == "clear_output":
        return {"kind": "clear_output", "wait": bool(content.get("wait", False))}
    return None


def to_output(update: Update) -> dict[str, Any] | None:
    """The nbformat v4 output dict for an update (None for clear_output / display updates)."""
    kind = update["kind"]
    if kind == "stream":
        return {"output_type": "stream", "name": update["name"], "text": update["text"]}
    if kind == "result":
        return {
            "output_type": "execute_result",
            "data": update["data"],
            "metadata": update["metadata"],
            "execution_count": update["execution_count"],
        }
    if kind == "display" and not update["update"]:
        return {"output_type": "display_data", "data": update["data"], "metadata": update["metadata"]}
    if kind == "error":
        return {
            "output_type": "error",
            "ename": update["ename"],
            "evalue": update["evalue"],
            "traceback": update["traceback"],
        }
    return None


def system_exit_code(error: dict[str, Any] | None) -> int | None:
    """The status a Python ``SystemExit`` asked for, as ``python`` would exit with it (None
    for any other error): ``sys.exit()`` 0, ``sys.exit(5)`` 5, ``sys.exit("msg")`` 1."""
    if not error or error.get("ename") != "SystemExit":
        return None
    value = str(error.get("evalue", "")).strip()
    if value in ("", "None"):
        return 0
    try:
        return int(value) & 0xFF
    except ValueError:
        return 1


def parent_id(msg: dict[str, Any]) -> str | None:
    return (msg.get("parent_header") or {}).get("msg_id")
