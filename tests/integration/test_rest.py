"""The REST API against a real server and real kernels: every endpoint and error path."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from icpy_kernels.server.openapi import document, template

from .harness import TOKEN, ThreadedServer, module_server

RUN = uuid.uuid4().hex[:8]  # execution ids are unique per run (a history may keep old ones)
LIMIT = 64 * 1024
AUTH = {"Authorization": f"Bearer {TOKEN}"}


server = module_server(keepalive_interval=0.5, max_message_size=LIMIT, interrupt_grace=2.0)


@pytest.fixture(scope="module")
def named():
    return "rest-" + uuid.uuid4().hex[:8]


def base(server: ThreadedServer) -> str:
    return f"http://127.0.0.1:{server.port}"


async def fetch(server: ThreadedServer, path: str, method: str = "GET", body: Any = None,
                headers: dict[str, str] | None = None, timeout: float = 60, **kw: Any):
    if body is not None and not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    if body is None and method in ("POST", "PUT"):
        body = b""
    request = HTTPRequest(base(server) + path, method=method, body=body,
                          headers=AUTH if headers is None else headers,
                          request_timeout=timeout, allow_nonstandard_methods=True, **kw)
    response = await AsyncHTTPClient().fetch(request, raise_error=False)
    is_json = response.headers.get("Content-Type", "").startswith("application/json")
    return response.code, json.loads(response.body) if response.body and is_json else None, response


def error_of(body: dict[str, Any]) -> dict[str, Any]:
    assert set(body) == {"error"}
    assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)
    return body["error"]


async def wait_until(predicate, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


# -- auth and HTTP errors -----------------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_token_is_required_and_checked(server):
    code, body, _ = await fetch(server, "/api/sessions", headers={})
    assert code == 401 and error_of(body)["code"] == "unauthorized"
    code, body, _ = await fetch(server, "/api/sessions", headers={"Authorization": "Bearer wrong"})
    assert code == 403 and error_of(body)["code"] == "forbidden"
    code, body, _ = await fetch(server, f"/api/sessions?token={TOKEN}", headers={})
    assert code == 200 and isinstance(body["sessions"], list)
    code, _, _ = await fetch(server, "/api/execute", "POST", {"code": "1"}, headers={})
    assert code == 401
    # Health and the API description need no token.
    code, body, _ = await fetch(server, "/api/health", headers={})
    assert code == 200 and body["status"] == "ok"
    code, body, _ = await fetch(server, "/api/openapi.json", headers={})
    assert code == 200 and body["openapi"].startswith("3.")


@pytest.mark.gen_test(timeout=60)
async def test_not_found_and_method_not_allowed(server):
    code, body, _ = await fetch(server, "/api/nothing-here")
    assert code == 404 and error_of(body)["code"] == "not_found"
    code, body, _ = await fetch(server, "/api/sessions/nobody")
    assert code == 404 and error_of(body) == {
        "code": "session_not_found", "message": "No session 'nobody'", "session_id": "nobody"}
    code, body, _ = await fetch(server, "/api/executions/never-ran")
    assert code == 404 and error_of(body)["code"] == "execution_not_found"
    code, body, _ = await fetch(server, "/api/sessions/nobody/restart", "POST")
    assert code == 404
    code, body, response = await fetch(server, "/api/execute", "GET")
    assert code == 405 and error_of(body)["code"] == "method_not_allowed"
    assert response.headers["Allow"] == "POST"
    code, body, response = await fetch(server, "/api/sessions", "PUT", {})
    assert code == 405 and response.headers["Allow"] == "GET, POST"
    code, _, response = await fetch(server, "/api/languages", "DELETE")
    assert code == 405 and response.headers["Allow"] == "GET"


@pytest.mark.gen_test(timeout=60)
async def test_body_too_large_gets_a_real_413(server):
    big = {"code": "x" * (LIMIT + 10)}
    code, body, response = await fetch(server, "/api/execute", "POST", big)
    assert code == 413
    err = error_of(body)
    assert err["code"] == "payload_too_large" and err["limit"] == LIMIT
    assert response.headers["Connection"] == "close"
    # Refused before any kernel work, and the server keeps serving.
    code, _, _ = await fetch(server, "/api/languages")
    assert code == 200


@pytest.mark.gen_test(timeout=60)
async def test_validation_errors_are_400_and_name_the_field(server):
    for body, expected, field in [
        ("{not json", "invalid_json", None),
        ("[1]", "invalid_json", None),
        ({}, "validation_error", "code"),
        ({"code": 5}, "validation_error", "code"),
        ({"code": "1", "config": {"timeout": 0}}, "validation_error", "config.timeout"),
        ({"code": "1", "session_id": "no spaces"}, "validation_error", "session_id"),
        ({"code": "1", "language": "cobol"}, "unknown_language", None),
    ]:
        code, answer, _ = await fetch(server, "/api/execute", "POST", body)
        assert code == 400, body
        err = error_of(answer)
        assert err["code"] == expected
        if field:
            assert err["field"] == field
    code, answer, _ = await fetch(server, "/api/sessions", "POST", {"session_id": "bad id"})
    assert code == 400 and error_of(answer)["field"] == "session_id"


@pytest.mark.gen_test(timeout=60)
async def test_no_capacity_is_503():
    full = ThreadedServer(max_sessions=0).start()
    try:
        code, body, _ = await fetch(full, "/api/execute", "POST", {"code": "1"})
        assert code == 503 and error_of(body)["code"] == "capacity"
        code, body, _ = await fetch(full, "/api/sessions", "POST", {"session_id": "s"})
        assert code == 503
    finally:
        full.stop()


# -- executions -----------------------------------------------------------------------------------
@pytest.mark.gen_test(timeout=90)
async def test_execute_in_a_temporary_session(server):
    code, result, _ = await fetch(server, "/api/execute", "POST",
                                  {"code": "print('hi')\n2+3", "execution_id": f"rest-temp-1-{RUN}"})
    assert code == 200
    assert result["type"] == "execution_result" and result["execution_id"] == f"rest-temp-1-{RUN}"
    assert result["status"] == "completed" and result["output"] == ["hi", "5"]
    assert result["session_id"] not in server.sessions()  # shut down after the call
    code, again, _ = await fetch(server, f"/api/executions/rest-temp-1-{RUN}")
    assert code == 200 and again["output"] == ["hi", "5"]


@pytest.mark.gen_test(timeout=90)
async def test_execute_in_a_named_session_timeout_and_failure(server, named):
    code, r, _ = await fetch(server, "/api/execute", "POST",
                             {"code": "y = 21", "session_id": named, "language": "py"})
    assert code == 200 and r["status"] == "completed" and r["session_id"] == named
    code, r, _ = await fetch(server, "/api/execute", "POST", {"code": "y * 2", "session_id": named})
    assert r["output"] == ["42"]
    code, r, _ = await fetch(server, "/api/execute", "POST",
                             {"code": "import time\ntime.sleep(10)", "session_id": named, "config": {"timeout": 0.5}})
    assert code == 200 and r["status"] == "timeout"
    code, r, _ = await fetch(server, "/api/execute", "POST", {"code": "1/0", "session_id": named})
    assert code == 200 and r["status"] == "failed" and r["error"]["ename"] == "ZeroDivisionError"
    assert named in server.sessions()


async def stream(server: ThreadedServer, body: dict[str, Any], **kw: Any):
    """POST /api/execute streaming; returns [(arrival time, event)], the response and the end time."""
    lines: list[tuple[float, dict[str, Any]]] = []
    pending = bytearray()

    def on_chunk(chunk: bytes) -> None:
        pending.extend(chunk)
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            lines.append((time.monotonic(), json.loads(line)))

    code, _, response = await fetch(server, "/api/execute", "POST", body, streaming_callback=on_chunk, **kw)
    return code, lines, response, time.monotonic()


@pytest.mark.gen_test(timeout=90)
async def test_ndjson_streams_events_as_they_happen_with_keepalives(server, named):
    code = "import time\nprint('first', flush=True)\ntime.sleep(1.5)\nprint('last')\n'end'"
    status, lines, response, _ = await stream(
        server, {"code": code, "session_id": named, "execution_id": f"rest-stream-1-{RUN}"},
        headers={**AUTH, "Accept": "application/x-ndjson"})
    assert status == 200 and response.headers["Content-Type"] == "application/x-ndjson"
    events = [e for _, e in lines]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "execution_started" and kinds[-1] == "execution_result"
    assert "keepalive" in kinds
    assert all(e["execution_id"] == f"rest-stream-1-{RUN}" for e in events)
    updates = [e for e in events if e["type"] == "execution_update"]
    assert [u["seq"] for u in updates] == list(range(1, len(updates) + 1))
    assert updates[0]["update"] == {"kind": "stream", "name": "stdout", "text": "first\n"}
    first_output = next(t for t, e in lines if e["type"] == "execution_update")
    assert lines[-1][0] - first_output > 1.0, "the first line must arrive before the execution ends"
    assert events[-1]["status"] == "completed" and events[-1]["output"] == ["first", "last", "'end'"]


@pytest.mark.gen_test(timeout=90)
async def test_stream_query_flag_and_error_before_start(server, named):
    code, _, resp = await fetch(server, "/api/execute?stream=1", "POST", {"code": "print(2)", "session_id": named})
    assert code == 200 and resp.headers["Content-Type"] == "application/x-ndjson"
    events = [json.loads(line) for line in resp.body.decode().splitlines()]
    assert events[0]["type"] == "execution_started"
    assert events[-1]["type"] == "execution_result" and events[-1]["output"] == ["2"]
    # An error found before anything was streamed is a plain HTTP error, not an ndjson line.
    others = [lang for lang in server.manager.languages.available() if lang != "python"]
    body = ({"code": "1", "session_id": named, "language": others[0]} if others else
            {"code": "1", "session_id": named, "config": {"working_directory": "/no/such/dir"}})
    code, answer, resp = await fetch(server, "/api/execute?stream=1", "POST", body)
    assert resp.headers["Content-Type"].startswith("application/json")
    assert (code, error_of(answer)["code"]) in ((409, "session_conflict"), (400, "validation_error"))


async def open_stream_and_leave(server: ThreadedServer, body: dict[str, Any]) -> None:
    """Start a streaming execute over a raw socket, read until its first output, then vanish."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    payload = json.dumps(body).encode()
    writer.write(b"POST /api/execute?stream=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 + f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                 + payload)
    await writer.drain()
    seen = b""
    while b"execution_update" not in seen:
        chunk = await asyncio.wait_for(reader.read(65536), 30)
        assert chunk, seen
        seen += chunk
    assert seen.startswith(b"HTTP/1.1 200")
    writer.close()


async def result_of(server: ThreadedServer, execution_id: str) -> dict[str, Any]:
    async def finished():
        _, body, _ = await fetch(server, f"/api/executions/{execution_id}")
        return body if body["status"] != "running" else None
    return await wait_until(finished)


@pytest.mark.gen_test(timeout=90)
async def test_leaving_interrupts_an_unnamed_execution(server):
    code = "import time\nprint('go', flush=True)\ntime.sleep(30)"
    await open_stream_and_leave(server, {"code": code, "execution_id": f"rest-leave-temp-{RUN}"})
    result = await result_of(server, f"rest-leave-temp-{RUN}")
    assert result["status"] == "interrupted" and result["output"] == ["go"]
    assert result["execution_time"] < 15

    async def session_gone():
        return result["session_id"] not in server.sessions()
    await wait_until(session_gone)


@pytest.mark.gen_test(timeout=90)
async def test_leaving_does_not_stop_a_named_execution(server, named):
    code = "import time\nprint('go', flush=True)\ntime.sleep(1.5)\nprint('done')"
    await open_stream_and_leave(server, {"code": code, "execution_id": f"rest-leave-named-{RUN}", "session_id": named})
    status, running, _ = await fetch(server, f"/api/executions/rest-leave-named-{RUN}")
    assert status == 200 and running["status"] == "running" and running["output"] == ["go"]
    result = await result_of(server, f"rest-leave-named-{RUN}")
    assert result["status"] == "completed" and result["output"] == ["go", "done"]
    assert named in server.sessions()


# -- sessions, languages, the API description ---------------------------------------------------
@pytest.mark.gen_test(timeout=120)
async def test_session_endpoints(server):
    session = "rest-s-" + uuid.uuid4().hex[:6]
    code, created, _ = await fetch(server, "/api/sessions", "POST", {"session_id": session, "language": "python"})
    assert code == 201 and created["session_id"] == session and created["state"] == "idle"
    # Again: nothing is created, so 200 with that session; another language is a conflict.
    code, again, _ = await fetch(server, "/api/sessions", "POST", {"session_id": session, "language": "py"})
    assert code == 200 and again["session_id"] == session and again["created"] == created["created"]
    code, body, _ = await fetch(server, "/api/sessions", "POST", {"session_id": session, "language": "bash"})
    assert code == 409 and error_of(body)["code"] == "session_conflict"
    code, listed, _ = await fetch(server, "/api/sessions")
    assert session in [s["session_id"] for s in listed["sessions"]]
    code, one, _ = await fetch(server, f"/api/sessions/{session}")
    assert code == 200 and one["named"] is True and one["kernel_name"] == "python3"
    code, r, _ = await fetch(server, f"/api/sessions/{session}/interrupt", "POST")
    assert code == 200 and r == {"session_id": session, "execution_id": None, "interrupted": False}
    await fetch(server, "/api/execute", "POST", {"code": "z = 3", "session_id": session})
    code, r, _ = await fetch(server, f"/api/sessions/{session}/restart", "POST")
    assert code == 200 and r["restarts"] == 1
    _, r, _ = await fetch(server, "/api/execute", "POST", {"code": "z", "session_id": session})
    assert r["error"]["ename"] == "NameError"
    code, r, _ = await fetch(server, f"/api/sessions/{session}", "DELETE")
    assert code == 200 and r == {"session_id": session, "shutdown": True}
    code, _, _ = await fetch(server, f"/api/sessions/{session}")
    assert code == 404
    code, _, _ = await fetch(server, f"/api/sessions/{session}", "DELETE")
    assert code == 404


@pytest.mark.gen_test(timeout=60)
async def test_languages(server):
    code, body, _ = await fetch(server, "/api/languages")
    assert code == 200
    python = next(lang for lang in body["languages"] if lang["language"] == "python")
    assert python["kernelspec"] == "python3" and python["display_name"]
    assert "version" in python


def test_openapi_describes_exactly_the_routes(server):
    routed = {template(rule.matcher.regex.pattern) for rule in server.server.app.wildcard_router.rules}
    described = set(document()["paths"])
    assert routed == described
    for path, ops in document()["paths"].items():
        for op in ops.values():
            assert op["responses"], path
            for name in [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]:
                assert "{" + name + "}" in path
