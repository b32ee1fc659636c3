"""What a session may ask of the sandbox (``config.sandbox``, ``config.network``,
``config.limits``): parsed and validated here, purely, so the protocol layer can use it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ValidationError

# config.limits.<name> -> the Settings field that caps it
LIMITS = {"memory": "memory_limit", "processes": "process_limit", "file_size": "file_size_limit",
          "open_files": "open_files_limit", "disk_quota": "disk_quota", "cpu": "cpu_limit"}


@dataclass(frozen=True)
class SessionSandbox:
    """What one session asks for when it is created (ignored for an existing session)."""

    sandbox: bool = True
    network: bool = False
    limits: dict[str, int] = field(default_factory=dict)


def parse_session_sandbox(raw: dict[str, Any]) -> SessionSandbox:
    """``config.sandbox``, ``config.network`` and ``config.limits`` of a request (pure)."""
    values: dict[str, Any] = {}
    for name in ("sandbox", "network"):
        value = raw.get(name)
        if value is not None:
            if not isinstance(value, bool):
                raise ValidationError(f"'config.{name}' must be a boolean", field=f"config.{name}")
            values[name] = value
    limits = raw.get("limits")
    limits = {} if limits is None else limits
    if not isinstance(limits, dict):
        raise ValidationError("'config.limits' must be an object", field="config.limits")
    for name, value in limits.items():
        if name not in LIMITS:
            raise ValidationError(f"unknown limit 'config.limits.{name}'; known: {', '.join(LIMITS)}",
                                  field=f"config.limits.{name}")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValidationError(f"'config.limits.{name}' must be a positive integer",
                                  field=f"config.limits.{name}")
    return SessionSandbox(limits=dict(limits), **values)
