"""The error hierarchy: every error a client can see, with its wire code and HTTP status.

    IcpyError                      code            HTTP
    ├── ProtocolError
    │   ├── InvalidJSON            invalid_json     400
    │   ├── UnknownType            unknown_type     400
    │   ├── ValidationError        validation_error 400  (names the field)
    │   └── PayloadTooLarge        payload_too_large 413 (an HTTP body over max_message_size)
    ├── UnknownLanguage            unknown_language 400  (lists the available ones)
    ├── SessionNotFound            session_not_found 404
    ├── ExecutionNotFound          execution_not_found 404
    ├── SessionConflict            session_conflict 409  (e.g. a python session asked to run bash)
    ├── NotWaitingForInput         not_waiting_for_input 409  (input_reply for an execution not reading stdin)
    ├── CapacityError              capacity        503
    │   ├── SlowConsumer           slow_consumer   503  (a client too slow for its broadcasts: dropped from them)
    │   └── QueueFull              queue_full      429  (a session holds --max-queued executions / bytes)
    ├── KernelStartError           kernel_start_failed 500
    ├── SandboxUnavailable         sandbox_unavailable 503  (the sandbox cannot give what was asked)
    └── AuthError                  unauthorized 401 / forbidden 403

A user's failing code is never one of these: it is an ``error`` update and a ``failed`` result.
"""

from __future__ import annotations

from typing import Any


class IcpyError(Exception):
    code = "internal_error"
    http_status = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = {k: v for k, v in details.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


class ProtocolError(IcpyError):
    http_status = 400


class InvalidJSON(ProtocolError):
    code = "invalid_json"


class UnknownType(ProtocolError):
    code = "unknown_type"


class ValidationError(ProtocolError):
    code = "validation_error"

    def __init__(self, message: str, field: str | None = None, **details: Any) -> None:
        super().__init__(message, field=field, **details)
        self.field = field


class PayloadTooLarge(ProtocolError):
    code = "payload_too_large"
    http_status = 413


class UnknownLanguage(IcpyError):
    code = "unknown_language"
    http_status = 400

    def __init__(self, language: str, available: list[str]) -> None:
        super().__init__(
            f"Unknown language {language!r}; available: {', '.join(available)}",
            language=language,
            available=available,
        )


class SessionNotFound(IcpyError):
    code = "session_not_found"
    http_status = 404


class ExecutionNotFound(IcpyError):
    code = "execution_not_found"
    http_status = 404


class SessionConflict(IcpyError):
    code = "session_conflict"
    http_status = 409


class NotWaitingForInput(IcpyError):
    code = "not_waiting_for_input"
    http_status = 409


class CapacityError(IcpyError):
    code = "capacity"
    http_status = 503


class SlowConsumer(CapacityError):
    code = "slow_consumer"


class QueueFull(CapacityError):
    """Too much waiting in one session; the client may retry once earlier work has run."""

    code = "queue_full"
    http_status = 429


class SandboxUnavailable(IcpyError):
    code = "sandbox_unavailable"
    http_status = 503


class KernelStartError(IcpyError):
    code = "kernel_start_failed"
    http_status = 500


class AuthError(IcpyError):
    code = "unauthorized"
    http_status = 401


class ForbiddenError(AuthError):
    code = "forbidden"
    http_status = 403
