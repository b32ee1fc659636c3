"""Validation of the broadcast, history and resume messages (pure: no I/O)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import ValidationError
from .messages import optional_id, whole_number

MAX_HISTORY_LIMIT = 1000
# A REST query's integer, as written: ASCII digits only (str.isdigit() also takes "²", which
# int() refuses), no surrounding blanks (the OpenAPI document says integer, not " 5").
QUERY_INT = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class HistoryQuery:
    session_id: str | None
    language: str | None
    limit: int
    before: str | None  # an execution_id: entries that started before it


def parse_topics(message: dict[str, Any], limit: int | None = None) -> list[str]:
    """``limit``: the most patterns a subscriber may hold, so a flood is refused before any
    work that grows with it (the bus checks the total it would reach)."""
    topics = message.get("topics")
    if not isinstance(topics, list) or not topics:
        raise ValidationError("'topics' must be a non-empty list of strings", field="topics")
    if limit is not None and len(topics) > limit:
        raise ValidationError(f"at most {limit} topic patterns may be subscribed ({len(topics)} sent)",
                              field="topics", limit=limit)
    for topic in topics:
        if not isinstance(topic, str) or not topic.strip() or len(topic) > 256:
            raise ValidationError("every topic must be a non-empty string (at most 256 characters)",
                                  field="topics")
    return list(dict.fromkeys(topics))


def require_id(message: dict[str, Any], name: str) -> str:
    value = optional_id(message, name)
    if value is None:
        raise ValidationError(f"'{name}' is required", field=name)
    return value


def _query_int(text: str) -> int | None:
    if not QUERY_INT.fullmatch(text):
        return None
    # Past 18 digits every bound used here is crossed, and int() refuses over 4300 digits
    # (a ValueError, i.e. a 500): such a number stands in as +-10**18.
    if len(text.lstrip("-").lstrip("0")) > 18:
        return -(10**18) if text.startswith("-") else 10**18
    return int(text)


def _int(message: dict[str, Any], name: str, default: int, low: int, high: int | None = None) -> int:
    value = message.get(name, default)
    if value is None:
        return default
    number = _query_int(value) if isinstance(value, str) else whole_number(value)
    if number is None or number < low or (high and number > high):
        bound = f"between {low} and {high}" if high else f">= {low}"
        raise ValidationError(f"'{name}' must be an integer {bound}", field=name)
    return number


def parse_history(message: dict[str, Any]) -> HistoryQuery:
    language = message.get("language")
    if language is not None and (not isinstance(language, str) or not language):
        raise ValidationError("'language' must be a non-empty string", field="language")
    return HistoryQuery(
        session_id=optional_id(message, "session_id"),
        language=language,
        limit=_int(message, "limit", 50, 1, MAX_HISTORY_LIMIT),
        before=optional_id(message, "before"),
    )


def parse_resume(message: dict[str, Any]) -> tuple[str, int]:
    return require_id(message, "execution_id"), _int(message, "after_seq", 0, 0)
