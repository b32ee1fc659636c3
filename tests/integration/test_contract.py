"""The HTTP contract as third-party clients see it: error shapes on every route, oversized
chunked bodies, and the OpenAPI document checked against the live server by schemathesis."""

from __future__ import annotations

import asyncio
import json
import platform

import pytest

from .harness import TOKEN, ThreadedServer, module_server

LIMIT = 16 * 1024
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HANDSHAKE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
             "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}

server = module_server(max_message_size=LIMIT, max_sessions=2)


async def raw(server: ThreadedServer, head: str, body: bytes = b"", timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh socket, as bytes: no client library smooths anything over.
    Returns the status, the headers (lowercased names) and the body read until close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()
        data = await asyncio.wait_for(_response(reader), timeout)
    finally:
        writer.close()
    header_block, _, content = data.partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, content


async def _response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return head + (await reader.readexactly(length) if length else b"")


def request(method: str, path: str, headers: dict[str, str] | None = None) -> str:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return "\r\n".join(lines) + "\r\n"


def json_error(status: int, headers: dict[str, str], body: bytes, code: str) -> dict[str, str]:
    assert headers["content-type"].startswith("application/json"), (status, headers, body)
    error = json.loads(body)["error"]
    assert error["code"] == code and isinstance(error["message"], str), error
    return error


# -- every error is our JSON error ----------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("path", ["/api/health", "/ws", "/ws/enhanced"])
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "TRACE", "POST"])
async def test_unsupported_methods_are_json_405_with_allow(server, path, method):
    status, headers, body = await raw(server, request(method, path, {**AUTH, "Content-Length": "0"}))
    assert status == 405 and headers["allow"] == "GET"
    json_error(status, headers, body, "method_not_allowed")


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("path", ["/ws", "/ws/enhanced"])
async def test_websocket_refusals_are_json(server, path):
    # A plain GET (a browser tab, curl) is no handshake.
    status, headers, body = await raw(server, request("GET", path, AUTH))
    assert status == 400
    json_error(status, headers, body, "bad_request")
    # A cross-site page: refused before the upgrade, in our shape (tornado's would be text/html).
    status, headers, body = await raw(server, request("GET", path, {**AUTH, **HANDSHAKE,
                                                                    "Sec-Fetch-Site": "cross-site"}))
    assert status == 403
    json_error(status, headers, body, "forbidden")
    status, headers, body = await raw(server, request("GET", path, {**AUTH, **HANDSHAKE,
                                                                    "Origin": "http://evil.example"}))
    assert status == 403
    json_error(status, headers, body, "forbidden")
    # A protocol version tornado does not speak: 426 naming the one it does.
    status, headers, body = await raw(server, request("GET", path, {**AUTH, **HANDSHAKE,
                                                                    "Sec-WebSocket-Version": "99"}))
    assert status == 426 and headers["sec-websocket-version"] == "13"
    json_error(status, headers, body, "upgrade_required")
    status, headers, body = await raw(server, request("GET", path, HANDSHAKE))
    assert status == 401
    json_error(status, headers, body, "unauthorized")


@pytest.mark.gen_test(timeout=60)
async def test_unknown_paths_are_json_404(server):
    for method in ("GET", "POST", "TRACE"):
        status, headers, body = await raw(server, request(method, "/nowhere", {"Content-Length": "0"}))
        assert status == 404
        json_error(status, headers, body, "not_found")


# -- bodies over max_message_size ---------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("path", ["/api/execute", "/api/sessions", "/api/sessions/x/complete"])
async def test_oversized_chunked_body_is_413_and_finished(server, path):
    # No Content-Length, so the size shows only while reading: answered like a sized body
    # (413, our JSON, Connection: close), promptly, and the request is over (none left pending).
    chunk = b"x" * 4096
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(2 * LIMIT // len(chunk)))
    head = request("POST", path, {**AUTH, "Transfer-Encoding": "chunked", "Content-Type": "application/json"})
    status, headers, content = await raw(server, head, body + b"0\r\n\r\n", timeout=10)
    assert status == 413 and headers.get("connection") == "close"
    assert json_error(status, headers, content, "payload_too_large")["limit"] == LIMIT


@pytest.mark.gen_test(timeout=60)
async def test_small_chunked_body_is_read(server):
    body = json.dumps({"code": "x", "language": "nope"}).encode()
    head = request("POST", "/api/execute", {**AUTH, "Transfer-Encoding": "chunked"})
    status, headers, content = await raw(server, head, b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    assert status == 400
    json_error(status, headers, content, "unknown_language")  # the body was parsed


# -- languages ------------------------------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_language_versions_are_known_before_any_kernel_runs(server):
    assert server.sessions() == {}  # nothing has run in this server yet
    status, headers, body = await raw(server, request("GET", "/api/languages", AUTH))
    assert status == 200
    versions = {lang["language"]: lang["version"] for lang in json.loads(body)["languages"]}
    # What the kernels' kernel_info will say: ipykernel runs this interpreter (the spec's bare
    # "python"), the others report their interpreter's version string.
    assert versions["python"] == platform.python_version()
    for language in ("javascript", "bash"):
        if language in versions:
            assert versions[language] and versions[language][0].isdigit(), versions


# -- the OpenAPI document against the live server ---------------------------------------------------
# Operations schemathesis does not call, and why (each is covered by its own tests instead):
EXCLUDED = {
    "GET /ws": "a valid request upgrades to a WebSocket, which an HTTP client cannot follow",
    "GET /ws/enhanced": "as /ws",
    "GET /api/events": "a valid request streams until the client leaves: it never ends",
    "POST /api/execute": "each accepted example starts a kernel and runs generated code; and its "
                         "language may be any installed kernel:NAME, which no schema enum can list",
    "POST /api/sessions": "each accepted example starts a kernel (and the language, as execute)",
}


@pytest.mark.slow
def test_schemathesis_finds_nothing(server, tmp_path):
    """Every check schemathesis has, on loopback, with a fixed seed: the document is exactly as
    strict as the server (a schema-valid request is accepted, an invalid one refused, every
    answer is documented)."""
    import subprocess
    import sys
    from pathlib import Path

    exclude = [arg for op in EXCLUDED for arg in ("--exclude-name", op)]
    cli = Path(sys.executable).with_name("schemathesis")
    proc = subprocess.run(
        [str(cli), "--no-color", "run", f"http://127.0.0.1:{server.port}/api/openapi.json",
         "-H", f"Authorization: Bearer {TOKEN}", "--checks", "all",
         # Every phase, each bounded by the examples per operation (30: about 20 s here, 50 took
         # 28 s with nothing more found). No --max-time: with one, fuzzing and the stateful
         # phase repeat until it is spent, so the run always takes that long.
         "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", "30",
         # Reproducible: a fixed seed, one worker, and no example database (schemathesis would
         # otherwise replay failures it stored in the working directory on an earlier run).
         "--seed", "20261207", "--workers", "1", "--generation-database", "none",
         "--request-timeout", "20", *exclude],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-6000:]


@pytest.mark.gen_test(timeout=60)
async def test_stream_query_is_checked_against_its_enum(server):
    body = json.dumps({"code": "1", "language": "nope"}).encode()
    head = request("POST", "/api/execute?stream=maybe", {**AUTH, "Content-Length": str(len(body))})
    status, headers, content = await raw(server, head, body)
    assert status == 400
    assert json_error(status, headers, content, "validation_error")["field"] == "stream"


@pytest.mark.gen_test(timeout=60)
async def test_query_values_are_read_as_sent(server):
    # tornado's get_query_argument strips blanks and turns control characters into spaces:
    # " 1" passed the stream enum, and a language of "\x16" became "" (400 for a valid value).
    body = json.dumps({"code": "1", "language": "nope"}).encode()
    head = request("POST", "/api/execute?stream=%201", {**AUTH, "Content-Length": str(len(body))})
    status, headers, content = await raw(server, head, body)
    assert json_error(status, headers, content, "validation_error")["field"] == "stream"
    status, _, content = await raw(server, request("GET", "/api/executions?language=%16", AUTH))
    assert status == 200 and json.loads(content)["entries"] == []
    for query, field in (("limit=%C2%B2", "limit"), ("limit=%205", "limit"), ("before=e1%0A", "before")):
        # "²".isdigit() is true, and int("²") raised: a 500 before.
        status, headers, content = await raw(server, request("GET", f"/api/executions?{query}", AUTH))
        assert status == 400 and json_error(status, headers, content, "validation_error")["field"] == field
