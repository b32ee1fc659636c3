"""Constructors for every event the server sends; the shapes are documented in docs/protocol.md."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ..errors import IcpyError

_last_encoded: tuple[dict[str, Any] | None, str] = (None, "")


def encode(event: dict[str, Any]) -> str:
    """JSON text of an event. One event usually goes to several listeners in a row (its
    client, attached clients, the NDJSON stream); a result can be tens of MB, so the last
    encoding is reused rather than redone per listener. Events are not mutated once sent."""
    global _last_encoded
    if _last_encoded[0] is event:
        return _last_encoded[1]
    text = json.dumps(event)
    _last_encoded = (event, text)
    return text


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


def execution_update(execution_id: str, seq: int, update: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "execution_update",
        "execution_id": execution_id,
        "seq": seq,
        "update": update,
        "timestamp": now(),
    }


def resumed(execution_id: str, session_id: str | None, status: str, after_seq: int) -> dict[str, Any]:
    """The answer to ``resume``: what follows are the updates after ``after_seq``."""
    return {"type": "resumed", "execution_id": execution_id, "session_id": session_id,
            "status": status, "after_seq": after_seq, "timestamp": now()}


def keepalive(execution_id: str) -> dict[str, Any]:
    return {"type": "keepalive", "execution_id": execution_id, "timestamp": now()}
