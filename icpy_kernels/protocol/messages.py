"""Validation of client messages into typed requests (pure: no I/O, no kernels)."""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidJSON, ValidationError
from ..provisioning.options import SessionSandbox, parse_session_sandbox
from . import ids

ENV_NAME = re.compile(ids.ENV_NAME)  # fullmatch, as ID_PATTERN
ID_PATTERN = re.compile(ids.ID)  # fullmatch: `$` would let a final "\n" in
MAX_PATH_BYTES = 4096  # PATH_MAX


@dataclass(frozen=True)
class ExecutionConfig:
    timeout: float
    max_output_size: int
    working_directory: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    allow_stdin: bool = False
    # config.sandbox / config.network / config.limits: used when this request creates its session
    sandbox: SessionSandbox = field(default_factory=SessionSandbox)


@dataclass(frozen=True)
class ExecuteRequest:
    code: str
    language: str
    execution_id: str
    session_id: str | None
    config: ExecutionConfig
    client_execution_id: bool = False


def decode_json(text: str | bytes | bytearray, what: str = "Frame") -> Any:
    """Parse JSON a client sent (frame, body, batch); every way it can fail is ``invalid_json``.

    ``json.loads`` recurses once per nesting level: ``[[[...]]]`` a few thousand deep (a few
    KB, far under any size limit) raises RecursionError, which is no ValueError and used to
    escape the handlers (a dropped socket, a 500).
    """
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise InvalidJSON(f"{what} is nested too deeply to parse") from exc
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidJSON(f"{what} is not valid JSON: {exc}") from exc


def parse_frame(text: str | bytes) -> dict[str, Any]:
    """Decode one frame; anything but a JSON object is ``invalid_json``."""
    message = decode_json(text)
    if not isinstance(message, dict):
        raise InvalidJSON("Frame must be a JSON object")
    return message


def whole_number(value: Any) -> int | None:
    """``value`` as an int if it is a JSON integer, else None. JSON (and JSON Schema's
    "integer") has no int/float split: 3.0 is the integer 3, as clients that only have doubles
    (JavaScript) may send it. A boolean is no number here, though Python counts it as one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def optional_id(message: dict[str, Any], name: str) -> str | None:
    value = message.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ValidationError(
            f"'{name}' must be a string of 1-128 letters, digits or _.:@-", field=name
        )
    return value


def _number(config: dict[str, Any], name: str, default: float, cap: float) -> float:
    value = config.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValidationError(f"'config.{name}' must be a positive number", field=f"config.{name}")
    return min(float(value), cap)


def parse_config(raw: Any, *, default_timeout: float, max_timeout: float, max_output_size: int) -> ExecutionConfig:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValidationError("'config' must be an object", field="config")
    timeout = _number(raw, "timeout", default_timeout, max_timeout)
    output_cap = int(_number(raw, "max_output_size", max_output_size, max_output_size))

    cwd = raw.get("working_directory")
    if cwd is not None and (not isinstance(cwd, str) or not cwd or "\0" in cwd):
        raise ValidationError(
            "'config.working_directory' must be a non-empty string", field="config.working_directory"
        )
    # Capped before the server walks it component by component (no path is longer on Linux).
    if cwd is not None and len(cwd.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise ValidationError(
            f"'config.working_directory' is longer than {MAX_PATH_BYTES} bytes",
            field="config.working_directory",
        )

    env = raw.get("environment") or {}
    if not isinstance(env, dict):
        raise ValidationError("'config.environment' must be an object of strings", field="config.environment")
    for key, value in env.items():
        if not ENV_NAME.fullmatch(key):
            raise ValidationError(
                f"'config.environment' key {key!r} is not a valid variable name",
                field="config.environment",
            )
        if not isinstance(value, str) or "\0" in value:
            raise ValidationError(
                f"'config.environment.{key}' must be a string without NUL bytes",
                field="config.environment",
            )

    allow_stdin = raw.get("allow_stdin", False)
    if not isinstance(allow_stdin, bool):
        raise ValidationError("'config.allow_stdin' must be a boolean", field="config.allow_stdin")
    return ExecutionConfig(timeout, output_cap, cwd, dict(env), allow_stdin,
                           parse_session_sandbox(raw))


def parse_execute(
    message: dict[str, Any], *, default_timeout: float, max_timeout: float, max_output_size: int
) -> ExecuteRequest:
    """Validate an ``execute`` / ``execute_streaming`` message (or JSON-RPC params)."""
    execution_id = optional_id(message, "execution_id")
    code = message.get("code")
    if code is None or code == "":
        raise ValidationError("No code provided for execution", field="code")
    if not isinstance(code, str):
        raise ValidationError("'code' must be a string", field="code")
    language = message.get("language", "python")
    if not isinstance(language, str) or not language:
        raise ValidationError("'language' must be a non-empty string", field="language")
    session_id = optional_id(message, "session_id")
    config = parse_config(
        message.get("config"),
        default_timeout=default_timeout,
        max_timeout=max_timeout,
        max_output_size=max_output_size,
    )
    return ExecuteRequest(
        code=code,
        language=language,
        execution_id=execution_id or str(uuid.uuid4()),
        session_id=session_id,
        config=config,
        client_execution_id=execution_id is not None,
    )
