"""JSON-RPC 2.0 (pure): request validation, response and error constructors, error-code mapping."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import errors
from ..errors import IcpyError
from .events import now
from .messages import decode_json

VERSION = "2.0"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# Each IcpyError class maps once to a JSON-RPC code; a subclass not listed takes its nearest
# listed ancestor's code. Server errors use the spec's reserved -32000..-32099 range; the
# error's own wire ``code`` travels in ``error.data.code``.
ERROR_CODES: dict[type[IcpyError], int] = {
    errors.IcpyError: -32000,  # any other server error; data.code says which
    errors.InvalidJSON: PARSE_ERROR,
    errors.ProtocolError: INVALID_REQUEST,
    errors.PayloadTooLarge: -32009,
    errors.UnknownType: METHOD_NOT_FOUND,
    errors.ValidationError: INVALID_PARAMS,
    errors.UnknownLanguage: -32001,
    errors.SessionNotFound: -32002,
    errors.ExecutionNotFound: -32003,
    errors.SessionConflict: -32004,
    errors.CapacityError: -32005,
    errors.KernelStartError: -32006,
    errors.AuthError: -32007,
    errors.ForbiddenError: -32008,
    errors.NotWaitingForInput: -32010,
}

Id = str | int | float | None


@dataclass(frozen=True)
class Request:
    method: str
    params: dict[str, Any] | list[Any] = field(default_factory=dict)
    id: Id = None
    notification: bool = False


class Rejected(Exception):
    """A frame or entry refused before dispatch; ``response`` is the error response to send."""

    def __init__(self, response: dict[str, Any]) -> None:
        super().__init__(response["error"]["message"])
        self.response = response


def error_code(exc: IcpyError) -> int:
    for cls in type(exc).__mro__:
        if cls in ERROR_CODES:
            return ERROR_CODES[cls]
    return INTERNAL_ERROR


# -- decoding ----------------------------------------------------------------------
def decode(text: str | bytes) -> Any:
    """Parse a frame or body; raises ``Rejected`` carrying a -32700 response."""
    try:
        return decode_json(text)
    except errors.InvalidJSON as exc:
        raise Rejected(error(None, PARSE_ERROR, f"Parse error: {exc.message}")) from exc


def is_jsonrpc(message: Any) -> bool:
    """Whether a decoded bare frame is JSON-RPC: an object with ``jsonrpc``, or a batch.

    An array counts as a batch when it is empty or holds at least one such object; other
    arrays are left to the native protocol (which answers ``invalid_json``).
    """
    if isinstance(message, dict):
        return "jsonrpc" in message
    if isinstance(message, list):
        return not message or any(isinstance(m, dict) and "jsonrpc" in m for m in message)
    return False


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool))


def parse_request(entry: Any) -> Request:
    """Validate one Request object (the spec's section 4); raises ``Rejected``."""
    if not isinstance(entry, dict):
        raise Rejected(error(None, INVALID_REQUEST, "Invalid Request: expected an object"))
    ident = entry.get("id")
    reply_id = ident if _valid_id(ident) else None
    if entry.get("jsonrpc") != VERSION:
        raise Rejected(error(reply_id, INVALID_REQUEST, "Invalid Request: 'jsonrpc' must be \"2.0\""))
    if not _valid_id(ident):
        raise Rejected(error(None, INVALID_REQUEST, "Invalid Request: 'id' must be a string, number or null"))
    method = entry.get("method")
    if not isinstance(method, str) or not method:
        raise Rejected(error(reply_id, INVALID_REQUEST, "Invalid Request: 'method' must be a non-empty string"))
    params = entry.get("params", {})
    if not isinstance(params, (dict, list)):
        raise Rejected(error(reply_id, INVALID_REQUEST, "Invalid Request: 'params' must be an object or an array"))
    return Request(method, params, ident, notification="id" not in entry)


def named_params(request: Request) -> dict[str, Any]:
    """Every method here takes named params; by-position params are -32602."""
    if isinstance(request.params, list):
        if not request.params:
            return {}
        raise errors.ValidationError("params must be an object (by-name); arrays are not supported", field="params")
    return request.params


# -- responses ---------------------------------------------------------------------
def result(ident: Id, value: Any) -> dict[str, Any]:
    return {"jsonrpc": VERSION, "id": ident, "result": value}


def error(ident: Id, code: int, message: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        body["data"] = data
    return {"jsonrpc": VERSION, "id": ident, "error": body}


def method_not_found(ident: Id, method: str, known: list[str]) -> dict[str, Any]:
    return error(ident, METHOD_NOT_FOUND, f"Method not found: {method!r}",
                 {"code": "method_not_found", "method": method, "known": sorted(known)})


def from_exception(ident: Id, exc: IcpyError) -> dict[str, Any]:
    """An IcpyError as a JSON-RPC error; ``data`` is the native error object (code, field...)."""
    code = error_code(exc)
    message = exc.message
    if code == INVALID_PARAMS:
        message = f"Invalid params: {exc.message}"
    return error(ident, code, message, exc.to_dict())


def notification(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": VERSION, "method": method, "params": params}


# -- the wrapped form existing front ends send: {"type": "jsonrpc", "request": ...} -------
def is_wrapped(message: Any) -> bool:
    return isinstance(message, dict) and message.get("type") == "jsonrpc" and "jsonrpc" not in message


def wrap_response(response: Any) -> dict[str, Any]:
    return {"type": "jsonrpc_response", "response": response, "timestamp": now()}


def wrap_notification(message: dict[str, Any]) -> dict[str, Any]:
    return {"type": "jsonrpc_notification", "notification": message, "timestamp": now()}
