"""Interactive messages over a real server and real kernels: interrupt, stdin, complete/inspect/
is_complete, session operations and idle culling (issue: Shared sessions)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from .harness import TOKEN, Client, ThreadedServer


def sid() -> str:
    return "i-" + uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
def editor_session():
    """A named python session reused by tests that leave its state alone."""
    return "ed-" + uuid.uuid4().hex[:8]


def reply_to(rid: str):
    return lambda m: m.get("request_id") == rid


def of(execution_id: str, kind: str | None = None):
    def match(m: dict[str, Any]) -> bool:
        return m.get("execution_id") == execution_id and (kind is None or m["type"] == kind)
    return match


def update_of(execution_id: str, kind: str):
    return lambda m: (m.get("execution_id") == execution_id and m["type"] == "execution_update"
                      and m["update"]["kind"] == kind)


async def request(client: Client, message: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    rid = "r-" + uuid.uuid4().hex[:8]
    await client.send({**message, "request_id": rid})
    return await client.wait_for(reply_to(rid), timeout)


# -- interrupt --------------------------------------------------------------------------
@pytest.mark.gen_test(timeout=90)
async def test_interrupt_by_execution_and_by_session_keeps_state(server, editor_session):
    client = await Client.connect(server.url())
    await client.execute("import time; kept = 41", session_id=editor_session)
    for target in ("execution_id", "session_id"):
        eid = f"int-{target}"
        await client.send({"type": "execute_streaming", "code": "time.sleep(30)", "execution_id": eid,
                           "session_id": editor_session})
        await client.wait_for(of(eid, "execution_started"))
        start = time.monotonic()
        ids = {"execution_id": eid} if target == "execution_id" else {"session_id": editor_session}
        reply = await request(client, {"type": "interrupt", **ids})
        assert reply["type"] == "interrupt_reply"
        assert reply["interrupted"] is True
        assert reply["execution_id"] == eid and reply["session_id"] == editor_session
        result = await client.wait_for(of(eid, "execution_result"), 20)
        assert result["status"] == "interrupted"
        assert result["error"]["ename"] == "KeyboardInterrupt"
        assert result["kernel_restarted"] is False
        assert time.monotonic() - start < 10
    _, r = await client.execute("kept + 1", session_id=editor_session)
    assert r["output"] == ["42"]  # the session kept its state
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_interrupt_with_nothing_running_and_unknown_ids(server, editor_session):
    client = await Client.connect(server.url())
    await client.execute("1", session_id=editor_session, execution_id="int-done")
    reply = await request(client, {"type": "interrupt", "session_id": editor_session})
    assert reply == {"type": "interrupt_reply", "request_id": reply["request_id"], "session_id": editor_session,
                     "execution_id": None, "interrupted": False, "timestamp": reply["timestamp"]}
    reply = await request(client, {"type": "interrupt", "execution_id": "int-done"})
    assert reply["interrupted"] is False and reply["execution_id"] == "int-done"
    err = await request(client, {"type": "interrupt", "execution_id": "no-such-execution"})
    assert err["type"] == "error" and err["code"] == "execution_not_found"
    err = await request(client, {"type": "interrupt", "session_id": "no-such-session"})
    assert err["type"] == "error" and err["code"] == "session_not_found"
    err = await request(client, {"type": "interrupt"})
    assert err["code"] == "validation_error" and err["field"] == "execution_id"
    client.close()


@pytest.mark.gen_test(timeout=90)
async def test_interrupting_a_queued_execution_means_it_never_runs(server, editor_session):
    client = await Client.connect(server.url())
    await client.execute("import time; ran = False", session_id=editor_session)
    await client.send({"type": "execute_streaming", "code": "time.sleep(1.5)", "execution_id": "q-first",
                       "session_id": editor_session})
    await client.send({"type": "execute", "code": "ran = True", "execution_id": "q-second",
                       "session_id": editor_session})
    await client.wait_for(of("q-first", "execution_started"))
    await asyncio.sleep(0.2)  # q-second is registered (after its history lookup) and queued
    reply = await request(client, {"type": "interrupt", "execution_id": "q-second"})
    assert reply["interrupted"] is True
    first = await client.wait_for(of("q-first", "execution_result"))
    second = await client.wait_for(of("q-second", "execution_result"))
    assert first["status"] == "completed"  # only the queued one was interrupted
    assert second["status"] == "interrupted"
    _, r = await client.execute("ran", session_id=editor_session)
    assert r["output"] == ["False"]
    client.close()


# -- stdin ------------------------------------------------------------------------------
@pytest.mark.gen_test(timeout=90)
async def test_input_and_getpass_round_trip(server, editor_session):
    client = await Client.connect(server.url())
    code = "name = input('Name? ')\nimport getpass\npw = getpass.getpass('Password: ')\nprint('hi', name, len(pw))"
    await client.send({"type": "execute_streaming", "code": code, "execution_id": "stdin-1",
                       "session_id": editor_session, "config": {"allow_stdin": True}})
    first = await client.wait_for(update_of("stdin-1", "input_request"))
    assert first["update"] == {"kind": "input_request", "prompt": "Name? ", "password": False}
    ack = await request(client, {"type": "input_reply", "execution_id": "stdin-1", "value": "Ada"})
    assert ack["type"] == "input_accepted"
    assert ack["execution_id"] == "stdin-1" and ack["session_id"] == editor_session
    second = await client.wait_for(update_of("stdin-1", "input_request"))
    assert second["update"] == {"kind": "input_request", "prompt": "Password: ", "password": True}
    assert second["seq"] > first["seq"]
    other = await Client.connect(server.url())  # any connection may answer (a collaborator)
    ack = await request(other, {"type": "input_reply", "execution_id": "stdin-1", "value": "s3cret"})
    assert ack["type"] == "input_accepted"
    other.close()
    result = await client.wait_for(of("stdin-1", "execution_result"))
    assert result["status"] == "completed"
    assert result["output"] == ["hi Ada 6"]
    # The execution is over: one more line has nobody to go to.
    err = await request(client, {"type": "input_reply", "execution_id": "stdin-1", "value": "late"})
    assert err["type"] == "error" and err["code"] == "not_waiting_for_input"
    assert err["execution_id"] == "stdin-1"
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_plain_execute_gets_the_input_request_and_only_it(server, editor_session):
    client = await Client.connect(server.url())
    await client.send({"type": "execute", "code": "print('before')\nx = input('> ')\nx * 2",
                       "execution_id": "stdin-plain", "session_id": editor_session,
                       "config": {"allow_stdin": True}})
    first = await client.next()
    assert first["type"] == "execution_update" and first["update"]["kind"] == "input_request"
    await client.send({"type": "input_reply", "execution_id": "stdin-plain", "value": "ab"})
    result = await client.wait_for(of("stdin-plain", "execution_result"))
    assert result["output"] == ["before", "'abab'"]
    assert not [m for m in client.buffer if m["type"] == "execution_update"]  # no stream updates
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_input_without_allow_stdin_fails_at_once(server, editor_session):
    client = await Client.connect(server.url())
    start = time.monotonic()
    _, r = await client.execute("input('never answered: ')", session_id=editor_session, config={"timeout": 30})
    assert time.monotonic() - start < 10
    assert r["status"] == "failed"
    assert r["error"]["ename"] == "StdinNotImplementedError"
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_input_reply_errors(server, editor_session):
    client = await Client.connect(server.url())
    await client.send({"type": "execute", "code": "import time; time.sleep(1.5)", "execution_id": "busy-no-input",
                       "session_id": editor_session, "config": {"allow_stdin": True}})
    await asyncio.sleep(0.5)
    err = await request(client, {"type": "input_reply", "execution_id": "busy-no-input", "value": "x"})
    assert err["code"] == "not_waiting_for_input"  # running, but not reading stdin
    err = await request(client, {"type": "input_reply", "execution_id": "nope", "value": "x"})
    assert err["code"] == "execution_not_found"
    err = await request(client, {"type": "input_reply", "execution_id": "busy-no-input", "value": 3})
    assert err["code"] == "validation_error" and err["field"] == "value"
    err = await request(client, {"type": "input_reply", "value": "x"})
    assert err["code"] == "validation_error" and err["field"] == "execution_id"
    await client.wait_for(of("busy-no-input", "execution_result"))
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_waiting_for_input_is_bounded_by_timeout_and_interrupt(server, editor_session):
    client = await Client.connect(server.url())
    start = time.monotonic()
    _, r = await client.execute("input('? ')", session_id=editor_session,
                                config={"allow_stdin": True, "timeout": 1.5})
    assert r["status"] == "timeout"
    assert r["kernel_restarted"] is False
    assert time.monotonic() - start < 10

    await client.send({"type": "execute_streaming", "code": "answer = input('? ')", "execution_id": "stdin-int",
                       "session_id": editor_session, "config": {"allow_stdin": True}})
    await client.wait_for(update_of("stdin-int", "input_request"))
    reply = await request(client, {"type": "interrupt", "execution_id": "stdin-int"})
    assert reply["interrupted"] is True
    result = await client.wait_for(of("stdin-int", "execution_result"), 20)
    assert result["status"] == "interrupted"
    err = await request(client, {"type": "input_reply", "execution_id": "stdin-int", "value": "late"})
    assert err["code"] == "not_waiting_for_input"
    _, r = await client.execute("1 + 1", session_id=editor_session)
    assert r["output"] == ["2"]
    client.close()


# -- complete / inspect / is_complete ----------------------------------------------------
@pytest.mark.gen_test(timeout=90)
async def test_complete_inspect_is_complete(server, editor_session):
    client = await Client.connect(server.url())
    await client.execute("import os\nmy_long_variable = 1", session_id=editor_session)
    reply = await request(client, {"type": "complete", "session_id": editor_session,
                                   "code": "x = my_lo", "cursor_pos": 9})
    assert reply["type"] == "complete_reply" and reply["busy"] is False
    assert reply["session_id"] == editor_session
    assert "my_long_variable" in reply["matches"]
    assert (reply["cursor_start"], reply["cursor_end"]) == (4, 9)
    assert isinstance(reply["metadata"], dict)
    reply = await request(client, {"type": "complete", "session_id": editor_session, "code": "os.pa"})
    assert "os.path" in reply["matches"] or "path" in reply["matches"]  # cursor_pos defaults to the end

    reply = await request(client, {"type": "inspect", "session_id": editor_session, "code": "len",
                                   "cursor_pos": 3})
    assert reply["type"] == "inspect_reply" and reply["found"] is True
    assert "Return the number of items" in reply["data"]["text/plain"]
    assert set(reply) >= {"found", "data", "metadata", "busy", "session_id", "request_id"}
    reply = await request(client, {"type": "inspect", "session_id": editor_session, "code": "no_such_name_x",
                                   "cursor_pos": 5, "detail_level": 1})
    assert reply["found"] is False and reply["data"] == {}

    for code, status, indent in [("for i in range(3):", "incomplete", "    "), ("x = 1", "complete", ""),
                                 ("x = )", "invalid", "")]:
        reply = await request(client, {"type": "is_complete", "session_id": editor_session, "code": code})
        assert reply["type"] == "is_complete_reply"
        assert (reply["status"], reply["indent"]) == (status, indent), code
    client.close()


@pytest.mark.gen_test(timeout=90)
async def test_language_only_uses_the_connections_default_session(server):
    client = await Client.connect(server.url())
    _, r = await client.execute("default_only_var = 3")  # the connection's default python session
    reply = await request(client, {"type": "complete", "language": "python", "code": "default_only_v"})
    assert reply["session_id"] == r["session_id"]
    assert reply["matches"] == ["default_only_var"]
    client.close()


@pytest.mark.gen_test(timeout=90)
async def test_editor_requests_do_not_wait_on_a_busy_kernel(server, editor_session):
    client = await Client.connect(server.url())
    await client.send({"type": "execute", "code": "import time; time.sleep(6)", "execution_id": "busy-run",
                       "session_id": editor_session})
    await asyncio.sleep(0.5)
    start = time.monotonic()
    replies = []
    for kind in ("complete", "inspect", "is_complete"):
        await client.send({"type": kind, "session_id": editor_session, "code": "time.sl", "request_id": kind})
    for kind in ("complete", "inspect", "is_complete"):
        replies.append(await client.wait_for(reply_to(kind), 10))
    elapsed = time.monotonic() - start
    assert 1.5 < elapsed < 4.5  # the three waited together, about 2 s, not for the 6 s run
    complete, inspect, is_complete = replies
    assert complete == {"type": "complete_reply", "request_id": "complete", "session_id": editor_session,
                        "matches": [], "cursor_start": 7, "cursor_end": 7, "metadata": {}, "busy": True,
                        "timestamp": complete["timestamp"]}
    assert inspect["busy"] is True and inspect["found"] is False
    assert is_complete["busy"] is True and is_complete["status"] == "unknown"
    # The kernel answers them late, after the run: those replies are dropped and change nothing.
    result = await client.wait_for(of("busy-run", "execution_result"))
    assert result["status"] == "completed"
    reply = await request(client, {"type": "complete", "session_id": editor_session, "code": "time.sl"})
    assert reply["busy"] is False and "sleep" in reply["matches"], reply
    _, r = await client.execute("'still fine'", session_id=editor_session)
    assert r["output"] == ["'still fine'"]
    assert not [m for m in client.buffer if m["type"] in ("complete_reply", "error")]
    client.close()


@pytest.mark.gen_test(timeout=120)
async def test_editor_requests_keep_their_bound_under_load(server):
    """20 concurrent complete/inspect from two clients on a kernel busy in a run, then on an
    idle kernel with a backlog of slow answers: each is answered within the 2 s bound."""
    session = sid()
    clients = [await Client.connect(server.url()) for _ in range(2)]
    await clients[0].execute("import time\nclass Slow:\n    def __repr__(self):\n"
                             "        time.sleep(0.5); return 'slow'\n    __str__ = __repr__\n"
                             "slow = Slow()", session_id=session)

    async def burst(code: str) -> list[tuple[float, dict[str, Any]]]:
        async def one(client: Client, i: int) -> tuple[float, dict[str, Any]]:
            start = time.monotonic()
            kind = "complete" if i % 2 else "inspect"
            reply = await request(client, {"type": kind, "session_id": session, "code": code}, 10)
            return time.monotonic() - start, reply

        return await asyncio.gather(*(one(clients[i % 2], i) for i in range(20)))

    await clients[0].send({"type": "execute_streaming", "code": "time.sleep(10)",
                           "execution_id": "bound-run", "session_id": session})
    await clients[0].wait_for(of("bound-run", "execution_started"))
    replies = await burst("time.sl")
    assert max(t for t, _ in replies) < 2.5, sorted(t for t, _ in replies)
    assert all(r["type"] in ("complete_reply", "inspect_reply") and r["busy"] for _, r in replies)
    await clients[0].wait_for(of("bound-run", "execution_result"), 20)
    # Idle now, but each inspect of `slow` takes the kernel 0.5 s: 20 in turn would take 10 s.
    replies = await burst("slow")
    assert max(t for t, _ in replies) < 2.5, sorted(t for t, _ in replies)
    assert any(not r["busy"] for _, r in replies) and any(r["busy"] for _, r in replies)
    for client in clients:
        client.close()


@pytest.mark.gen_test(timeout=60)
async def test_editor_request_errors_echo_request_id(server, editor_session):
    client = await Client.connect(server.url())
    cases = [
        ({"type": "complete", "session_id": editor_session, "code": "abc", "cursor_pos": -1}, "validation_error", "cursor_pos"),
        ({"type": "complete", "code": "abc"}, "validation_error", "session_id"),
        ({"type": "inspect", "session_id": editor_session, "code": 3}, "validation_error", "code"),
        ({"type": "inspect", "session_id": editor_session, "code": "x", "detail_level": 2}, "validation_error", "detail_level"),
        ({"type": "complete", "session_id": "no-such-session", "code": "x"}, "session_not_found", None),
        ({"type": "complete", "language": "cobol", "code": "x"}, "unknown_language", None),
    ]
    for message, code, field in cases:
        err = await request(client, message)
        assert err["type"] == "error" and err["code"] == code, (message, err)
        if field:
            assert err["field"] == field
    await client.send({"type": "complete", "session_id": editor_session, "code": "x", "request_id": {"a": 1}})
    err = await client.wait_for(lambda m: m["type"] == "error")
    assert err["field"] == "request_id"
    client.close()


# -- session operations -----------------------------------------------------------------
@pytest.mark.gen_test(timeout=120)
async def test_list_restart_shutdown_sessions(server):
    client = await Client.connect(server.url())
    session = sid()
    await client.execute("import time; state = 'kept'", session_id=session)
    reply = await request(client, {"type": "list_sessions"})
    assert reply["type"] == "sessions"
    mine = [s for s in reply["sessions"] if s["session_id"] == session]
    assert mine and mine[0]["language"] == "python" and mine[0]["named"] is True

    # A restart while code runs ends that execution at once, as failed with kernel_restarted.
    await client.send({"type": "execute", "code": "time.sleep(30)", "execution_id": "during-restart",
                       "session_id": session})
    await asyncio.sleep(0.5)
    start = time.monotonic()
    reply = await request(client, {"type": "restart_session", "session_id": session})
    assert reply["type"] == "restart_session_reply" and reply["session_id"] == session
    assert reply["session"]["restarts"] == 1 and reply["session"]["state"] == "idle"
    result = await client.wait_for(of("during-restart", "execution_result"), 10)
    assert result["status"] == "failed" and result["kernel_restarted"] is True
    assert result["error"]["ename"] == "SessionRestarted"
    assert time.monotonic() - start < 20
    _, r = await client.execute("'state' in dir()", session_id=session)
    assert r["output"] == ["False"]

    reply = await request(client, {"type": "shutdown_session", "session_id": session})
    assert reply["type"] == "shutdown_session_reply"
    assert reply["session_id"] == session and reply["shutdown"] is True
    assert session not in server.sessions()
    for kind in ("restart_session", "shutdown_session"):
        err = await request(client, {"type": kind, "session_id": session})
        assert err["code"] == "session_not_found" and err["session_id"] == session
        err = await request(client, {"type": kind})
        assert err["code"] == "validation_error" and err["field"] == "session_id"
    client.close()


@pytest.mark.gen_test(timeout=120)
async def test_idle_named_sessions_are_culled_but_never_while_running():
    srv = ThreadedServer(session_idle_timeout=1).start()
    try:
        client = await Client.connect(srv.url())
        watcher = await Client.connect(srv.url())
        watched = sid()
        await client.execute("1", session_id=watched)
        attached = await request(watcher, {"type": "attach", "session_id": watched})
        assert attached["type"] == "attached"
        busy = sid()
        await client.send({"type": "execute", "code": "import time; time.sleep(3); 'survived'",
                           "execution_id": "cull-busy", "session_id": busy})
        result = await client.wait_for(of("cull-busy", "execution_result"), 60)
        assert result["output"] == ["'survived'"]  # 3 s running with a 1 s idle limit
        assert busy in srv.sessions()
        for _ in range(60):
            if busy not in srv.sessions():
                break
            await asyncio.sleep(0.1)
        assert busy not in srv.sessions()  # idle for > 1 s after its run: culled
        # Idle for seconds, but a client is attached: kept until it detaches.
        assert watched in srv.sessions()
        await request(watcher, {"type": "detach", "session_id": watched})
        for _ in range(60):
            if watched not in srv.sessions():
                break
            await asyncio.sleep(0.1)
        assert watched not in srv.sessions()
        watcher.close()
        # The connection's default session is not named: never culled.
        _, r = await client.execute("1")
        await asyncio.sleep(2.5)
        assert r["session_id"] in srv.sessions()
        client.close()
    finally:
        srv.stop()


# -- the same operations over JSON-RPC and REST ----------------------------------------
async def rpc(client: Client, method: str, params: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    return await client.rpc(method, params, timeout=timeout)


async def http(srv: ThreadedServer, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    request = HTTPRequest(f"http://127.0.0.1:{srv.port}{path}", method="POST", body=json.dumps(body or {}),
                          headers={"Authorization": f"Bearer {TOKEN}"}, request_timeout=60)
    response = await AsyncHTTPClient().fetch(request, raise_error=False)
    return response.code, json.loads(response.body)


@pytest.mark.gen_test(timeout=90)
async def test_json_rpc_editor_methods_and_stdin(server, editor_session):
    client = await Client.connect(server.url())
    await client.execute("rpc_value = 1", session_id=editor_session)
    r = await rpc(client, "editor.complete", {"session_id": editor_session, "code": "rpc_va"})
    assert r["result"]["matches"] == ["rpc_value"] and r["result"]["busy"] is False, r
    r = await rpc(client, "editor.is_complete", {"session_id": editor_session, "code": "def f():"})
    assert r["result"]["status"] == "incomplete"
    r = await rpc(client, "editor.inspect", {"session_id": editor_session, "code": "rpc_value"})
    assert r["result"]["found"] is True and "int" in r["result"]["data"]["text/plain"]

    await client.send({"jsonrpc": "2.0", "id": "rpc-stdin", "method": "execute.code_streaming", "params": {
        "code": "print(input('rpc? ') * 2)", "session_id": editor_session, "execution_id": "rpc-stdin-1",
        "config": {"allow_stdin": True}}})
    note = await client.wait_for(lambda m: m.get("method") == "execute.update"
                                 and m["params"]["update"]["kind"] == "input_request")
    assert note["params"]["update"] == {"kind": "input_request", "prompt": "rpc? ", "password": False}
    r = await rpc(client, "execute.input", {"execution_id": "rpc-stdin-1", "value": "ab"})
    assert r["result"] == {"execution_id": "rpc-stdin-1", "session_id": editor_session, "accepted": True}
    done = await client.wait_for(lambda m: m.get("id") == "rpc-stdin")
    assert done["result"]["output"] == ["abab"]
    r = await rpc(client, "execute.input", {"execution_id": "rpc-stdin-1", "value": "ab"})
    assert r["error"]["code"] == -32010 and r["error"]["data"]["code"] == "not_waiting_for_input"
    client.close()


@pytest.mark.gen_test(timeout=90)
async def test_rest_editor_interrupt_and_input(server, editor_session):
    client = await Client.connect(server.url())
    await client.execute("rest_value = 2", session_id=editor_session)
    base = f"/api/sessions/{editor_session}"
    code, body = await http(server, base + "/complete", {"code": "rest_va"})
    assert code == 200 and body["matches"] == ["rest_value"] and body["session_id"] == editor_session
    code, body = await http(server, base + "/inspect", {"code": "rest_value", "detail_level": 1})
    assert code == 200 and body["found"] is True
    code, body = await http(server, base + "/is_complete", {"code": "if x:"})
    assert code == 200 and (body["status"], body["indent"]) == ("incomplete", "    ")
    code, body = await http(server, base + "/complete", {"code": "rest_va", "cursor_pos": 99})
    assert code == 200 and body["matches"] == ["rest_value"] and body["cursor_end"] == 7  # clamped
    code, body = await http(server, base + "/complete", {"code": "x", "cursor_pos": -1})
    assert code == 400 and body["error"]["field"] == "cursor_pos"
    code, body = await http(server, "/api/sessions/no-such-session/complete", {"code": "x"})
    assert code == 404 and body["error"]["code"] == "session_not_found"

    await client.send({"type": "execute_streaming", "code": "v = input('rest? ')\nimport time; time.sleep(30)",
                       "execution_id": "rest-stdin-1", "session_id": editor_session,
                       "config": {"allow_stdin": True}})
    await client.wait_for(update_of("rest-stdin-1", "input_request"))
    code, body = await http(server, "/api/executions/rest-stdin-1/input", {"value": "typed"})
    assert code == 200 and body["accepted"] is True
    code, body = await http(server, "/api/executions/rest-stdin-1/input", {"value": "again"})
    assert code == 409 and body["error"]["code"] == "not_waiting_for_input"
    code, body = await http(server, "/api/executions/rest-stdin-1/interrupt")
    assert code == 200 and body == {"session_id": editor_session, "execution_id": "rest-stdin-1",
                                    "interrupted": True}
    result = await client.wait_for(of("rest-stdin-1", "execution_result"), 20)
    assert result["status"] == "interrupted"
    _, r = await client.execute("v", session_id=editor_session)
    assert r["output"] == ["'typed'"]
    code, body = await http(server, "/api/executions/no-such-execution/interrupt")
    assert code == 404 and body["error"]["code"] == "execution_not_found"
    client.close()


# -- our own kernels: bash (`read`) and JavaScript (`await input()`) ---------------------
LANGUAGE_CASES = {
    "bash": {"read": 'read -p "Name? " x; echo "hi $x"', "no_stdin": 'read y; echo "status $?"',
             "no_stdin_status": "completed", "no_stdin_output": ["status 1"],  # read sees EOF
             "complete": ("ech", "echo"), "incomplete": "for i in 1 2; do", "complete_code": "echo ok"},
    "javascript": {"read": 'const x = await input("Name? "); console.log("hi " + x)', "no_stdin": 'await input("q")',
                   "no_stdin_status": "failed", "no_stdin_output": [],
                   "complete": ("Math.fl", "Math.floor"), "incomplete": "function f() {", "complete_code": "1 + 1"},
}


@pytest.mark.parametrize("language", sorted(LANGUAGE_CASES))
@pytest.mark.gen_test(timeout=120)
async def test_stdin_complete_interrupt_in_own_kernels(server, language):
    if language not in server.manager.languages.available():
        pytest.skip(f"{language} kernel not installed")
    case = LANGUAGE_CASES[language]
    session = sid()
    client = await Client.connect(server.url())
    eid = f"{session}-read"
    await client.send({"type": "execute_streaming", "code": case["read"], "execution_id": eid,
                       "session_id": session, "language": language, "config": {"allow_stdin": True}})
    note = await client.wait_for(update_of(eid, "input_request"), 60)
    assert note["update"] == {"kind": "input_request", "prompt": "Name? ", "password": False}
    ack = await request(client, {"type": "input_reply", "execution_id": eid, "value": "Ada"})
    assert ack["type"] == "input_accepted"
    result = await client.wait_for(of(eid, "execution_result"))
    assert (result["status"], result["output"]) == ("completed", ["hi Ada"])

    # Without allow_stdin: no input_request, no hang.
    start = time.monotonic()
    events, r = await client.execute(case["no_stdin"], session_id=session, language=language,
                                      streaming=True, config={"timeout": 20})
    assert time.monotonic() - start < 10
    assert (r["status"], r["output"]) == (case["no_stdin_status"], case["no_stdin_output"])
    assert not [e for e in events if e["type"] == "execution_update" and e["update"]["kind"] == "input_request"]

    prefix, match = case["complete"]
    reply = await request(client, {"type": "complete", "session_id": session, "code": prefix})
    assert match in reply["matches"] and reply["busy"] is False
    assert (reply["cursor_start"], reply["cursor_end"]) == (0, len(prefix))
    reply = await request(client, {"type": "is_complete", "session_id": session, "code": case["incomplete"]})
    assert reply["status"] == "incomplete"
    reply = await request(client, {"type": "is_complete", "session_id": session, "code": case["complete_code"]})
    assert reply["status"] == "complete"

    # Interrupted while waiting for input: the execution ends, the session serves the next one.
    eid = f"{session}-int"
    await client.send({"type": "execute_streaming", "code": case["read"], "execution_id": eid,
                       "session_id": session, "language": language, "config": {"allow_stdin": True}})
    await client.wait_for(update_of(eid, "input_request"), 30)
    reply = await request(client, {"type": "interrupt", "execution_id": eid})
    assert reply["interrupted"] is True
    result = await client.wait_for(of(eid, "execution_result"), 20)
    assert result["status"] == "interrupted" and result["kernel_restarted"] is False
    _, r = await client.execute(case["complete_code"], session_id=session, language=language)
    assert r["status"] == "completed"
    server.call(server.manager.shutdown_session(session))
    client.close()
