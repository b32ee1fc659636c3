"""Constructors for every event the server sends; the shapes are documented in docs/protocol.md."""

from __future__ import annotations

import json
import weakref
from datetime import UTC, datetime
from typing import Any

from ..errors import IcpyError

LARGE = 1 << 20  # an encoding this long is shared while in use, never kept for later

_last_encoded: tuple[dict[str, Any] | None, str] = (None, "")
_large: tuple[dict[str, Any], weakref.ref[_Shared]] | None = None


class _Shared(str):
    """A large encoding (a str subclass, so it can be weakly referenced)."""


class Reply(dict[str, Any]):
    """``{**event, **extra}`` whose encoding reuses the event's: a large result asked for
    many times (``get_result`` with its ``request_id``) is encoded once, not per request."""

    def __init__(self, event: dict[str, Any], extra: dict[str, Any]) -> None:
        super().__init__({**event, **extra})
        self.event, self.extra = event, extra


def _forget(ref: weakref.ref[_Shared]) -> None:
    global _large
    if _large is not None and _large[1] is ref:
        _large = None


def _head(event: dict[str, Any]) -> str:
    """The event's JSON text without its closing brace. One event usually goes to several
    listeners in a row (its client, attached clients, the NDJSON stream), so the last
    encoding is reused; a large one (a result can be tens of MB) is reused for as long as
    some queued frame still holds it, and then freed. Events are not mutated once sent."""
    global _last_encoded, _large
    if _last_encoded[0] is event:
        return _last_encoded[1]
    if _large is not None and _large[0] is event and (shared := _large[1]()) is not None:
        return shared
    text = json.dumps(event)[:-1]
    if len(text) < LARGE:
        _last_encoded = (event, text)
        return text
    shared = _Shared(text)
    _large = (event, weakref.ref(shared, _forget))
    return shared


def encode_parts(event: dict[str, Any]) -> tuple[str, str]:
    """The event's JSON text as (a possibly shared head, a small tail): a queue of frames
    holds the head once however many frames repeat it."""
    if not isinstance(event, dict):  # a JSON-RPC batch's answers: a list, small, not shared
        return json.dumps(event), ""
    if isinstance(event, Reply) and event.extra:
        return _head(event.event), ", " + json.dumps(event.extra)[1:]
    return _head(event), "}"


def encode(event: dict[str, Any]) -> str:
    """JSON text of an event (see ``_head`` for the reuse of encodings)."""
    return "".join(encode_parts(event))


def now() -> str:
    """ISO 8601 UTC with milliseconds, like Jupyter's message dates."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def welcome(connection_id: str, server_version: str, languages: list[str]) -> dict[str, Any]:
    return {
        "type": "welcome",
        "connection_id": connection_id,
        "server_version": server_version,
        "languages": languages,
        "timestamp": now(),
    }


def pong() -> dict[str, Any]:
    return {"type": "pong", "timestamp": now()}


def error(exc: IcpyError) -> dict[str, Any]:
    return {"type": "error", **exc.to_dict(), "timestamp": now()}


def execution_started(execution_id: str, session_id: str, language: str) -> dict[str, Any]:
    return {
        "type": "execution_started",
        "execution_id": execution_id,
        "session_id": session_id,
        "language": language,
        "timestamp": now(),
    }


def execution_update(execution_id: str, seq: int, update: dict[str, Any], late: bool = False) -> dict[str, Any]:
    """``late``: output the kernel sent under the execution after its result (only then present)."""
    event = {"type": "execution_update", "execution_id": execution_id, "seq": seq, "update": update}
    if late:
        event["late"] = True
    event["timestamp"] = now()
    return event


def resumed(execution_id: str, session_id: str | None, status: str, after_seq: int) -> dict[str, Any]:
    """The answer to ``resume``: what follows are the updates after ``after_seq``."""
    return {"type": "resumed", "execution_id": execution_id, "session_id": session_id,
            "status": status, "after_seq": after_seq, "timestamp": now()}


def keepalive(execution_id: str) -> dict[str, Any]:
    return {"type": "keepalive", "execution_id": execution_id, "timestamp": now()}
