"""The OpenAPI 3 document for the HTTP surface, served at ``GET /api/openapi.json``."""

from __future__ import annotations

import re
from typing import Any

from .. import __version__
from ..protocol import ids


def template(pattern: str) -> str:
    """A tornado route regex as an OpenAPI path: named groups become ``{name}``."""
    path = re.sub(r"\(\?P<(\w+)>(?:[^()]|\([^()]*\))*\)", r"{\1}", pattern.rstrip("$"))
    return path.replace("\\.", ".")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {400: "Invalid request (validation_error, invalid_json, unknown_language)",
            401: "No token", 403: "Wrong token", 404: "Not found", 405: "Method not allowed",
            426: "Not a WebSocket version this server speaks (Sec-WebSocket-Version: 13)",
            409: "Session conflict", 413: "Body larger than max_message_size",
            503: "No capacity (max_sessions reached, or shutting down)"}
    return {str(s): _json(_ref("Error"), text[s]) for s in statuses}


ID_SCHEMA = {"type": "string", "pattern": ids.anchored(ids.ID)}
NAME = {"type": "string", "minLength": 1}
# The characters Python's str.strip() removes (str.isspace()), spelled out: a pattern's \\s is
# ECMAScript's set, which differs (it lacks \\x1c-\\x1f and \\x85, and has \\ufeff).
BLANKS = r"\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID_SCHEMA}


def _op(summary: str, ok: dict[str, Any], *statuses: int, ok_status: str = "200",
        body: dict[str, Any] | None = None, params: tuple[str, ...] | list[str] = (), public: bool = False,
        extra: dict[str, Any] | None = None, extra_ok: dict[str, Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {ok_status: ok, **(extra_ok or {}), **_errors(*statuses)}}
    if body is not None:
        # A body with required fields is itself required: an empty one is refused like {}.
        op["requestBody"] = {"required": bool(body.get("required")),
                             "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = [_path_param(p) for p in params]
    if public:
        op["security"] = []
    op.update(extra or {})
    return op


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                           "field": {"type": "string"}, "execution_id": {"type": ["string", "null"]}},
            "additionalProperties": True}},
    },
    "ExecutionConfig": {
        "type": "object",
        "properties": {
            "timeout": {"type": "number", "exclusiveMinimum": 0},
            "max_output_size": {"type": "integer", "exclusiveMinimum": 0},
            "working_directory": {"type": "string"},
            "environment": {"type": "object", "additionalProperties": {"type": "string"},
                            "propertyNames": {"pattern": ids.anchored(ids.ENV_NAME)}},
            "allow_stdin": {"type": "boolean"},
        },
    },
    "ExecuteRequest": {
        "type": "object", "required": ["code"],
        "properties": {
            "code": {"type": "string", "minLength": 1},
            "language": {**NAME, "default": "python"},
            "session_id": {**ID_SCHEMA, "description": "named session; absent: a temporary one"},
            "execution_id": ID_SCHEMA,
            "config": _ref("ExecutionConfig"),
        },
    },
    "ExecutionResult": {
        "type": "object",
        "required": ["type", "execution_id", "session_id", "language", "status", "output", "errors",
                     "outputs", "execution_time", "exit_code", "timestamp"],
        "properties": {
            "type": {"const": "execution_result"},
            "execution_id": {"type": "string"}, "session_id": {"type": "string"},
            "language": {"type": "string"},
            "status": {"enum": ["running", "completed", "failed", "timeout", "interrupted"]},
            "output": {"type": "array", "items": {"type": "string"}},
            "errors": {"type": "array", "items": {"type": "string"}},
            "outputs": {"type": "array", "items": {"type": "object"},
                        "description": "nbformat outputs"},
            "result": {"type": ["object", "null"]}, "error": {"type": ["object", "null"]},
            "execution_count": {"type": ["integer", "null"]},
            "execution_time": {"type": "number"}, "exit_code": {"type": "integer"},
            "kernel_restarted": {"type": "boolean"}, "truncated": {"type": "boolean"},
            "timestamp": {"type": "string"},
        },
    },
    "Session": {
        "type": "object",
        "properties": {
            "session_id": {"type": "string"}, "language": {"type": "string"},
            "kernel_name": {"type": "string"}, "named": {"type": "boolean"},
            "state": {"enum": ["new", "starting", "idle", "busy", "dead", "shutdown"]},
            "execution_count": {"type": "integer"}, "restarts": {"type": "integer"},
            "queued": {"type": "integer"}, "created": {"type": "number"},
            "current_execution_id": {"type": ["string", "null"]},
        },
    },
    "Interrupt": {
        "type": "object",
        "properties": {"session_id": {"type": "string"}, "execution_id": {"type": ["string", "null"]},
                       "interrupted": {"type": "boolean"}},
    },
    "Language": {
        "type": "object",
        "properties": {"language": {"type": "string"}, "aliases": {"type": "array", "items": {"type": "string"}},
                       "kernelspec": {"type": "string"}, "display_name": {"type": "string"},
                       "kernel_language": {"type": "string"}, "version": {"type": ["string", "null"]}},
    },
}

NDJSON_EVENTS = {  # 3.1 has no `description` on a Media Type Object: it goes on the schema
    "schema": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}},
               "description": "With Accept: application/x-ndjson or ?stream=1: one event per line as it "
                              "happens (execution_started, execution_update..., keepalive, execution_result; "
                              "an error line if the execution fails to run after the stream began)"},
}


def _paths() -> dict[str, Any]:
    session = _json(_ref("Session"), "The session")
    upgrade = {"101": {"description": "Switching protocols (WebSocket); see docs/protocol.md"},
               **_errors(400, 401, 403, 426, 503)}
    ws = {"get": {"summary": "The WebSocket: native messages and JSON-RPC 2.0", "responses": upgrade}}
    return {
        "/ws": ws,
        "/ws/enhanced": {"get": {**ws["get"], "summary": "Alias of /ws"}},
        "/api/health": {"get": _op(
            "Liveness for anyone ({\"status\": \"ok\"}); with the token also sessions, connections, "
            "languages and sandbox",
            _json({"type": "object", "required": ["status"], "properties": {
                "status": {"const": "ok"}, "sessions": {"type": "integer"}, "connections": {"type": "integer"},
                "languages": {"type": "array", "items": {"type": "string"}}, "sandbox": {"type": "object"}}},
                "ok (the details only with a valid token)"), 403, public=True)},
        "/api/openapi.json": {"get": _op("This document", _json({"type": "object"}, "OpenAPI 3"), public=True)},
        "/api/languages": {"get": _op(
            "Languages whose kernels are installed",
            _json({"type": "object", "properties": {"languages": {"type": "array", "items": _ref("Language")}}},
                  "The languages"), 401, 403)},
        "/api/execute": {"post": _op(
            "Run code (in a temporary session unless session_id is given)",
            {"description": "The execution_result (a timeout is a result with status timeout)",
             "content": {"application/json": {"schema": _ref("ExecutionResult")},
                         "application/x-ndjson": NDJSON_EVENTS}},
            400, 401, 403, 405, 409, 413, 503, body=_ref("ExecuteRequest"),
            extra={"parameters": [{"name": "stream", "in": "query", "required": False,
                                   "schema": {"enum": ["0", "1", "true", "false"]},
                                   "description": "1: stream ndjson events (same as Accept: application/x-ndjson)"}]})},
        "/api/executions": {"get": _op(
            "The execution history, newest first (see docs/protocol.md, History)",
            _json({"type": "object", "properties": {
                "entries": {"type": "array", "items": {"type": "object"}},
                "next_before": {"type": ["string", "null"]}}}, "One page of history entries"),
            400, 401, 403, 404, extra={"parameters": [
                {"name": n, "in": "query", "required": False, "schema": schema, "description": text}
                for n, schema, text in (
                    ("session_id", ID_SCHEMA, "only this session's executions"),
                    ("language", NAME, "only this language's executions"),
                    ("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size (default 50)"),
                    ("before", ID_SCHEMA, "an execution_id: entries that started before it "
                                                   "(the previous page's next_before)"))]})},
        "/api/executions/{execution_id}": {"get": _op(
            "A finished execution's result, or a running one's output so far (status running)",
            _json(_ref("ExecutionResult"), "The result or snapshot"), 401, 403, 404, params=["execution_id"])},
        "/api/sessions": {
            "get": _op("Every session", _json(
                {"type": "object", "properties": {"sessions": {"type": "array", "items": _ref("Session")}}},
                "The sessions"), 401, 403),
            "post": _op("Create (and start) a named session; the existing one if session_id names one "
                        "(409 if it runs another language)", _json(_ref("Session"), "Created"),
                        400, 401, 403, 409, 413, 503, ok_status="201",
                        extra_ok={"200": _json(_ref("Session"), "It existed: that session, unchanged")},
                        body={"type": "object", "properties": {"session_id": ID_SCHEMA, "language": NAME}}),
        },
        "/api/sessions/{session_id}": {
            "get": _op("One session", session, 401, 403, 404, params=["session_id"]),
            "delete": _op("Shut a session down (its kernel stops)", _json(
                {"type": "object", "properties": {"session_id": {"type": "string"},
                                                  "shutdown": {"type": "boolean"}}}, "Shut down"),
                401, 403, 404, params=["session_id"]),
        },
        "/api/sessions/{session_id}/interrupt": {"post": _op(
            "Interrupt the running execution (state is kept)", _json(_ref("Interrupt"), "Interrupted or not"),
            401, 403, 404, params=["session_id"])},
        "/api/sessions/{session_id}/restart": {"post": _op(
            "Restart the kernel (state is lost)", session, 401, 403, 404, params=["session_id"])},
        **_interactive_paths(),
        **_sharing_paths(),
    }


def _interactive_paths() -> dict[str, Any]:
    """server/rest_interactive.py: editor requests, one execution's interrupt and stdin."""
    code = {"code": {"type": "string"}, "language": NAME}
    cursor = {"cursor_pos": {"type": "integer", "minimum": 0,
                             "description": "in code points; past the end is clamped to len(code); "
                                            "default: len(code)"}}
    busy = {"busy": {"type": "boolean", "description": "the kernel was running code: empty answer"}}
    kinds = {
        "complete": ("Completions at the cursor", {**code, **cursor}, {
            "matches": {"type": "array", "items": {"type": "string"}}, "cursor_start": {"type": "integer"},
            "cursor_end": {"type": "integer"}, "metadata": {"type": "object"}}),
        "inspect": ("Documentation of the name at the cursor", {
            **code, **cursor, "detail_level": {"enum": [0, 1]}}, {
            "found": {"type": "boolean"}, "data": {"type": "object"}, "metadata": {"type": "object"}}),
        "is_complete": ("Whether the code is a complete statement", code, {
            "status": {"enum": ["complete", "incomplete", "invalid", "unknown"]},
            "indent": {"type": "string"}}),
    }
    paths: dict[str, Any] = {
        f"/api/sessions/{{session_id}}/{kind}": {"post": _op(
            summary, _json({"type": "object", "properties": {
                "session_id": {"type": "string"}, **reply, **busy}}, "The kernel's answer"),
            400, 401, 403, 404, 413, params=["session_id"],
            body={"type": "object", "required": ["code"], "properties": body})}
        for kind, (summary, body, reply) in kinds.items()
    }
    paths["/api/executions/{execution_id}/interrupt"] = {"post": _op(
        "Interrupt this execution (a queued one never runs; state is kept)",
        _json(_ref("Interrupt"), "Interrupted or not"), 401, 403, 404, params=["execution_id"])}
    paths["/api/executions/{execution_id}/input"] = {"post": _op(
        "Answer this execution's input_request (config.allow_stdin)", _json({"type": "object", "properties": {
            "execution_id": {"type": "string"}, "session_id": {"type": "string"},
            "accepted": {"type": "boolean"}}}, "Delivered"),
        400, 401, 403, 404, 409, 413, params=["execution_id"],
        body={"type": "object", "required": ["value"], "properties": {"value": {"type": "string"}}})}
    return paths


def _sharing_paths() -> dict[str, Any]:
    """server/rest_sharing.py: the broadcast and resume as ndjson streams."""
    line = {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}}

    def ndjson(text: str) -> dict[str, Any]:
        return {"description": text, "content": {"application/x-ndjson": {"schema": line}}}

    def query(name: str, schema: dict[str, Any], text: str, required: bool = False) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": required, "schema": schema, "description": text}

    return {
        "/api/events": {"get": _op(
            "Broadcast events of the topics, as they happen (see docs/protocol.md, Broadcast)",
            ndjson("subscribed, then one broadcast event per line; keepalive after keepalive_interval "
                   "of quiet; a slow_consumer error line ends a stream its client reads too slowly"),
            400, 401, 403, extra={"parameters": [query(
                "topics", {"type": "string", "pattern": f"[^,{BLANKS}]"}, "comma-separated topic patterns (fnmatch), e.g. "
                "code_execution.*,session.work.*; may be repeated", required=True)]})},
        "/api/executions/{execution_id}/events": {"get": _op(
            "Resume an execution's events (see docs/protocol.md, Reconnect)",
            ndjson("resumed, every execution_update after after_seq, live ones (keepalive while quiet), "
                   "then the execution_result"),
            400, 401, 403, 404, extra={"parameters": [
                _path_param("execution_id"),
                query("after_seq", {"type": "integer", "minimum": 0}, "the last seq the client saw (default 0)")]})},
    }


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "icpy_kernels", "version": __version__,
                 "description": "Jupyter-kernel-backed code execution. Errors are "
                                "{\"error\": {\"code\", \"message\", ...}}; see docs/protocol.md."},
        "security": [{"bearer": []}, {"token": []}],
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "token": {"type": "apiKey", "in": "query", "name": "token"},
            },
        },
    }
