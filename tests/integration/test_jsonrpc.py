"""JSON-RPC 2.0 on the WebSocket, against a real server and real kernels."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest

from .harness import Client

RUN = uuid.uuid4().hex[:8]  # execution ids are unique per run (a history may keep old ones)


def sid() -> str:
    return "rpc-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def shared():
    """A named python session for tests that do not care about its state."""
    return sid()


def is_response(ident: Any, wrapped: bool = False):
    def match(m: dict[str, Any]) -> bool:
        if wrapped:
            return m.get("type") == "jsonrpc_response" and isinstance(m["response"], dict) \
                and m["response"].get("id") == ident
        return "jsonrpc" in m and "method" not in m and m.get("id") == ident
    return match


async def call(client: Client, method: str, params: dict[str, Any] | None = None, *,
               timeout: float = 60) -> dict[str, Any]:
    return await client.rpc(method, params, timeout=timeout)


@pytest.mark.gen_test(timeout=60)
async def test_execute_code_returns_the_execution_result(server, shared):
    client = await Client.connect(server.url())
    r = await call(client, "execute.code", {"code": "print('hi')\n6*7", "session_id": shared,
                                            "execution_id": f"rpc-exec-1-{RUN}"})
    assert set(r) == {"jsonrpc", "id", "result"} and r["jsonrpc"] == "2.0"
    result = r["result"]
    assert result["type"] == "execution_result"
    assert result["execution_id"] == f"rpc-exec-1-{RUN}" and result["session_id"] == shared
    assert result["status"] == "completed"
    assert result["output"] == ["hi", "42"]
    assert result["result"] == {"text/plain": "42"}
    # The native protocol still works on the same socket.
    await client.send({"type": "ping"})
    assert (await client.wait_for(lambda m: m.get("type") == "pong"))["type"] == "pong"
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_streaming_notifications_in_order_then_the_response(server, shared):
    client = await Client.connect(server.url())
    code = "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.2)\n'end'"
    await client.send({"jsonrpc": "2.0", "id": "s1", "method": "execute.code_streaming",
                       "params": {"code": code, "session_id": shared, "execution_id": f"rpc-stream-1-{RUN}"}})
    seen = []
    while True:
        m = await client.next(timeout=30)
        seen.append(m)
        if m.get("id") == "s1":
            break
    notes = [m for m in seen if m.get("method")]
    assert all(set(n) == {"jsonrpc", "method", "params"} and "id" not in n for n in notes)
    assert notes[0] == {"jsonrpc": "2.0", "method": "execute.started",
                        "params": {"execution_id": f"rpc-stream-1-{RUN}", "session_id": shared, "language": "python"}}
    updates = [n["params"] for n in notes[1:]]
    assert {n["method"] for n in notes[1:]} == {"execute.update"}
    assert [u["seq"] for u in updates] == list(range(1, len(updates) + 1))
    assert all(u["execution_id"] == f"rpc-stream-1-{RUN}" for u in updates)
    text = "".join(u["update"]["text"] for u in updates if u["update"]["kind"] == "stream")
    assert text == "0\n1\n2\n"
    assert updates[-1]["update"]["kind"] == "result"
    assert seen[-1]["result"]["status"] == "completed"
    assert seen[-1]["result"]["output"] == ["0", "1", "2", "'end'"]
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_wrapped_form_is_answered_wrapped(server, shared):
    client = await Client.connect(server.url())
    await client.send({"type": "jsonrpc", "request": {
        "jsonrpc": "2.0", "id": 11, "method": "execute.code_streaming",
        "params": {"code": "print('w')", "session_id": shared}}})
    seen = []
    while True:
        m = await client.next(timeout=30)
        seen.append(m)
        if m.get("type") == "jsonrpc_response":
            break
    assert [m["type"] for m in seen] == ["jsonrpc_notification"] * (len(seen) - 1) + ["jsonrpc_response"]
    assert [m["notification"]["method"] for m in seen[:-1]] == ["execute.started", "execute.update"]
    assert seen[1]["notification"]["params"]["update"] == {"kind": "stream", "name": "stdout", "text": "w\n"}
    response = seen[-1]
    assert response["timestamp"].endswith("Z")
    assert response["response"]["id"] == 11 and response["response"]["result"]["output"] == ["w"]
    # Wrapped errors and wrapped batches are wrapped too.
    await client.send({"type": "jsonrpc", "request": {"jsonrpc": "2.0", "id": 12, "method": "nope"}})
    err = await client.wait_for(is_response(12, wrapped=True))
    assert err["response"]["error"]["code"] == -32601
    await client.send({"type": "jsonrpc", "request": "not a request"})
    bad = await client.wait_for(lambda m: m.get("type") == "jsonrpc_response")
    assert bad["response"] == {"jsonrpc": "2.0", "id": None, "error": {
        "code": -32600, "message": "Invalid Request: expected an object"}}
    await client.send({"type": "jsonrpc", "request": [{"jsonrpc": "2.0", "id": 13, "method": "session.list"}]})
    batch = await client.wait_for(lambda m: m.get("type") == "jsonrpc_response")
    assert isinstance(batch["response"], list) and batch["response"][0]["id"] == 13
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_batch_mixing_request_notification_and_invalid_entry(server, shared):
    client = await Client.connect(server.url())
    marker = f"m{uuid.uuid4().hex[:6]}"
    await client.send(json.dumps([
        {"jsonrpc": "2.0", "id": "b1", "method": "languages.list"},
        {"jsonrpc": "2.0", "method": "execute.code", "params": {"code": f"{marker} = 5", "session_id": shared}},
        {"jsonrpc": "1.0", "id": "b3", "method": "languages.list"},
        7,
    ]))
    batch = json.loads(await asyncio.wait_for(client.conn.read_message(), 30))
    assert isinstance(batch, list) and len(batch) == 3
    by_id = {r["id"]: r for r in batch}
    assert "python" in [lang["language"] for lang in by_id["b1"]["result"]["languages"]]
    assert by_id["b3"]["error"]["code"] == -32600
    assert by_id[None]["error"]["code"] == -32600
    # The notification ran (its response was withheld): the variable exists now.
    r = await call(client, "execute.code", {"code": marker, "session_id": shared})
    assert r["result"]["output"] == ["5"]
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_notifications_and_batches_of_notifications_get_no_response(server, shared):
    client = await Client.connect(server.url())
    await client.send({"jsonrpc": "2.0", "method": "session.list"})
    await client.send(json.dumps([{"jsonrpc": "2.0", "method": "languages.list"},
                                  {"jsonrpc": "2.0", "method": "nope"}]))
    await client.send({"jsonrpc": "2.0", "id": "after", "method": "session.list"})
    first = json.loads(await asyncio.wait_for(client.conn.read_message(), 30))
    assert first["id"] == "after"
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_spec_errors(server):
    client = await Client.connect(server.url())

    async def raw(frame: str) -> Any:
        await client.send(frame)
        return json.loads(await asyncio.wait_for(client.conn.read_message(), 30))

    parse = await raw('{"jsonrpc": "2.0", "method": "session.list", "id": 1')
    assert parse["id"] is None and parse["error"]["code"] == -32700
    empty = await raw("[]")
    assert empty == {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid Request: empty batch"}}
    invalid = await raw('{"jsonrpc": "2.0", "id": 5}')
    assert invalid["id"] == 5 and invalid["error"]["code"] == -32600
    spec = await raw("[1, 2, 3, {\"jsonrpc\": \"2.0\"}]")
    assert [e["error"]["code"] for e in spec] == [-32600] * 4

    missing = await call(client, "no.such.method", {})
    assert missing["error"]["code"] == -32601
    assert "no.such.method" in missing["error"]["message"]
    assert missing["error"]["data"]["method"] == "no.such.method"
    assert "execute.code" in missing["error"]["data"]["known"]

    for method, params, field in [
        ("execute.code", {}, "code"),
        ("execute.code", {"code": "1", "config": {"timeout": "soon"}}, "config.timeout"),
        ("execute.code_streaming", {"code": "1", "session_id": "bad id!"}, "session_id"),
        ("session.restart", {}, "session_id"),
        ("session.shutdown", {"session_id": 3}, "session_id"),
        ("execute.interrupt", {}, "execution_id"),
        ("execute.code", [1, 2], "params"),
    ]:
        r = await call(client, method, params)
        assert r["error"]["code"] == -32602, (method, r)
        assert r["error"]["message"].startswith("Invalid params:")
        assert field in r["error"]["message"]
        assert r["error"]["data"]["code"] == "validation_error"
        assert r["error"]["data"]["field"] == field

    for method, params, code, data_code in [
        ("session.restart", {"session_id": "nobody"}, -32002, "session_not_found"),
        ("session.interrupt", {"session_id": "nobody"}, -32002, "session_not_found"),
        ("execute.interrupt", {"execution_id": "never-ran"}, -32003, "execution_not_found"),
        ("execute.code", {"code": "1", "language": "cobol", "execution_id": "x1"}, -32001, "unknown_language"),
    ]:
        r = await call(client, method, params)
        assert r["error"]["code"] == code, (method, r)
        assert r["error"]["data"]["code"] == data_code
    r = await call(client, "execute.code", {"code": "1", "language": "cobol", "execution_id": "x1"})
    assert r["error"]["data"]["execution_id"] == "x1" and "python" in r["error"]["data"]["available"]
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_timeout_is_a_result_not_an_error(server, shared):
    client = await Client.connect(server.url())
    r = await call(client, "execute.code", {"code": "import time\ntime.sleep(10)", "session_id": shared,
                                            "config": {"timeout": 0.5}})
    assert "error" not in r
    assert r["result"]["status"] == "timeout"
    client.close()


@pytest.mark.gen_test(timeout=90)
async def test_long_call_does_not_block_the_socket_and_interrupts(server, shared):
    client = await Client.connect(server.url())
    session = sid()
    await call(client, "session.create", {"session_id": session})
    await client.send({"jsonrpc": "2.0", "id": "long", "method": "execute.code_streaming",
                       "params": {"code": "import time\nprint('go', flush=True)\ntime.sleep(30)",
                                  "session_id": session, "execution_id": f"rpc-long-{RUN}"}})
    # Wait for output, not execute.started: a signal sent before the kernel runs the code is lost.
    await client.wait_for(lambda m: m.get("method") == "execute.update")
    t0 = time.monotonic()
    langs = await call(client, "languages.list")
    assert time.monotonic() - t0 < 5
    assert langs["result"]["languages"]
    interrupted = await call(client, "execute.interrupt", {"execution_id": f"rpc-long-{RUN}"})
    assert interrupted["result"] == {"session_id": session, "execution_id": f"rpc-long-{RUN}", "interrupted": True}
    done = await client.wait_for(is_response("long"), 30)
    assert done["result"]["status"] == "interrupted"
    await call(client, "session.shutdown", {"session_id": session})
    client.close()


@pytest.mark.gen_test(timeout=120)
async def test_session_lifecycle(server):
    client = await Client.connect(server.url())
    session = sid()
    created = await call(client, "session.create", {"session_id": session, "language": "python"})
    assert created["result"]["session_id"] == session and created["result"]["named"] is True
    assert created["result"]["state"] == "idle"
    listed = await call(client, "session.list")
    assert session in [s["session_id"] for s in listed["result"]["sessions"]]

    await call(client, "execute.code", {"code": "x = 1", "session_id": session})
    idle = await call(client, "session.interrupt", {"session_id": session})
    assert idle["result"] == {"session_id": session, "execution_id": None, "interrupted": False}
    await client.send({"jsonrpc": "2.0", "id": "busy", "method": "execute.code_streaming",
                       "params": {"code": "import time\nprint('go', flush=True)\ntime.sleep(30)",
                                  "session_id": session}})
    await client.wait_for(lambda m: m.get("method") == "execute.update")
    stopped = await call(client, "session.interrupt", {"session_id": session})
    assert stopped["result"]["interrupted"] is True
    assert (await client.wait_for(is_response("busy"), 30))["result"]["status"] == "interrupted"
    kept = await call(client, "execute.code", {"code": "x", "session_id": session})
    assert kept["result"]["output"] == ["1"]

    restarted = await call(client, "session.restart", {"session_id": session})
    assert restarted["result"]["restarts"] == 1
    lost = await call(client, "execute.code", {"code": "x", "session_id": session})
    assert lost["result"]["status"] == "failed" and lost["result"]["error"]["ename"] == "NameError"

    gone = await call(client, "session.shutdown", {"session_id": session})
    assert gone["result"] == {"session_id": session, "shutdown": True}
    listed = await call(client, "session.list")
    assert session not in [s["session_id"] for s in listed["result"]["sessions"]]
    again = await call(client, "session.shutdown", {"session_id": session})
    assert again["error"]["code"] == -32002
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_languages_list_and_default_session(server):
    client = await Client.connect(server.url())
    r = await call(client, "languages.list")
    python = next(lang for lang in r["result"]["languages"] if lang["language"] == "python")
    assert python["kernelspec"] == "python3" and python["display_name"]
    # Without a session_id the call runs in this connection's default session, like /ws.
    r = await call(client, "execute.code", {"code": "1+1"})
    assert r["result"]["session_id"].startswith("conn-") and r["result"]["output"] == ["2"]
    client.close()
    for _ in range(100):  # the default session goes with the socket
        if r["result"]["session_id"] not in server.sessions():
            break
        await asyncio.sleep(0.1)
    assert r["result"]["session_id"] not in server.sessions()
