"""The bridge over a real server and real ipykernel processes (issue: The bridge)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from icpy_kernels import __version__

from .harness import Client

RESULT_FIELDS = {
    "type", "execution_id", "session_id", "language", "status", "output", "errors", "outputs",
    "result", "error", "execution_count", "execution_time", "exit_code", "kernel_restarted",
    "truncated", "timestamp",
}


def sid() -> str:
    return "t-" + uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
def shared_session():
    """A named python session that tests may use when they don't care about its state."""
    return "shared-" + uuid.uuid4().hex[:8]


@pytest.mark.gen_test(timeout=60)
async def test_welcome_and_ping(server):
    client = await Client.connect(server.url())
    w = client.welcome
    assert w["type"] == "welcome"
    assert w["server_version"] == __version__
    assert "python" in w["languages"]
    assert isinstance(w["connection_id"], str) and w["connection_id"]
    assert w["timestamp"].endswith("Z")
    await client.send({"type": "ping"})
    pong = await client.next()
    assert pong["type"] == "pong" and "timestamp" in pong
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_enhanced_path_is_the_same_handler(server, shared_session):
    client = await Client.connect(server.url("/ws/enhanced"))
    assert client.welcome["type"] == "welcome"
    _, result = await client.execute("6*7", session_id=shared_session)
    assert result["output"] == ["42"]
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_execute_answers_exactly_one_result(server, shared_session):
    client = await Client.connect(server.url())
    await client.send({"type": "execute", "code": "print('hi')\n1+1", "session_id": shared_session,
                       "execution_id": "one-result"})
    result = await client.next()
    assert result["type"] == "execution_result"
    assert set(result) == RESULT_FIELDS
    assert result["execution_id"] == "one-result"
    assert result["session_id"] == shared_session
    assert result["language"] == "python"
    assert result["status"] == "completed"
    assert result["output"] == ["hi", "2"]
    assert result["errors"] == []
    assert result["result"] == {"text/plain": "2"}
    assert result["error"] is None
    assert result["exit_code"] == 0
    assert result["kernel_restarted"] is False and result["truncated"] is False
    assert isinstance(result["execution_count"], int)
    assert 0 <= result["execution_time"] < 10
    assert result["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": "hi\n"},
        {"output_type": "execute_result", "data": {"text/plain": "2"}, "metadata": {},
         "execution_count": result["execution_count"]},
    ]
    # Nothing else follows the result: the next frame is the answer to our ping.
    await client.send({"type": "ping"})
    assert (await client.next())["type"] == "pong"
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_execution_id_is_generated_when_absent(server, shared_session):
    client = await Client.connect(server.url())
    await client.send({"type": "execute", "code": "1", "session_id": shared_session})
    result = await client.next()
    assert uuid.UUID(result["execution_id"]).version == 4
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_streaming_events_and_update_kinds(server, shared_session):
    client = await Client.connect(server.url())
    code = (
        "import sys\n"
        "from IPython.display import display, HTML, clear_output\n"
        "print('out')\n"
        "print('err', file=sys.stderr)\n"
        "h = display(HTML('<b>x</b>'), display_id='d1')\n"
        "h.update(HTML('<b>y</b>'))\n"
        "clear_output(wait=True)\n"
        "print('after clear')\n"
        "41 + 1\n"
    )
    events, result = await client.execute(code, streaming=True, session_id=shared_session)
    assert events[0]["type"] == "execution_started"
    assert set(events[0]) == {"type", "execution_id", "session_id", "language", "timestamp"}
    assert events[0]["session_id"] == shared_session and events[0]["language"] == "python"
    updates = [e for e in events if e["type"] == "execution_update"]
    assert [u["seq"] for u in updates] == list(range(1, len(updates) + 1))
    kinds = [u["update"]["kind"] for u in updates]
    assert kinds == ["stream", "stream", "display", "display", "clear_output", "stream", "result"]
    u = [x["update"] for x in updates]
    assert u[0] == {"kind": "stream", "name": "stdout", "text": "out\n"}
    assert u[1] == {"kind": "stream", "name": "stderr", "text": "err\n"}
    assert u[2]["display_id"] == "d1" and u[2]["update"] is False and "text/html" in u[2]["data"]
    assert u[3]["display_id"] == "d1" and u[3]["update"] is True and u[3]["data"]["text/html"] == "<b>y</b>"
    assert u[4] == {"kind": "clear_output", "wait": True}
    assert u[6]["data"] == {"text/plain": "42"} and u[6]["execution_count"] == result["execution_count"]
    assert events[-1] is result and result["type"] == "execution_result"
    # clear_output(wait=True) clears at the next output, as a notebook would.
    assert [o["output_type"] for o in result["outputs"]] == ["stream", "execute_result"]
    assert result["outputs"][0]["text"] == "after clear\n"
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_error_update_and_failed_result(server, shared_session):
    client = await Client.connect(server.url())
    events, result = await client.execute("print('before')\nraise ValueError('bad thing')",
                                          streaming=True, session_id=shared_session)
    error = [e["update"] for e in events if e["type"] == "execution_update" and e["update"]["kind"] == "error"]
    assert len(error) == 1 and error[0]["ename"] == "ValueError" and error[0]["evalue"] == "bad thing"
    assert isinstance(error[0]["traceback"], list) and error[0]["traceback"]
    assert result["status"] == "failed" and result["exit_code"] == 1
    assert result["error"]["ename"] == "ValueError"
    assert result["errors"] == ["ValueError: bad thing"]
    assert result["output"] == ["before"]
    assert result["outputs"][-1]["output_type"] == "error"
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_output_arrives_while_code_runs(server, shared_session):
    client = await Client.connect(server.url())
    await client.execute("import time", session_id=shared_session)
    await client.execute("print('first', flush=True); time.sleep(1); print('second')",
                         streaming=True, session_id=shared_session)
    times = {m["update"]["text"]: t for t, m in client.timeline
             if m["type"] == "execution_update" and m["update"]["kind"] == "stream"}
    assert "first\n" in times and "second\n" in times
    assert times["second\n"] - times["first\n"] >= 0.8
    client.close()


@pytest.mark.gen_test(timeout=90)
async def test_named_session_keeps_state_across_connections(server):
    session = sid()
    a = await Client.connect(server.url())
    _, r = await a.execute("import os, math\nx = 41\nos.chdir('/tmp')", session_id=session)
    assert r["status"] == "completed"
    a.close()
    await asyncio.sleep(0.3)
    assert session in server.sessions()  # a named session outlives its connection
    b = await Client.connect(server.url())
    _, r = await b.execute("x + 1, math.floor(2.5), os.getcwd()", session_id=session)
    assert r["result"]["text/plain"] == "(42, 2, '/tmp')"
    b.close()
    server.call(server.manager.shutdown_session(session))


@pytest.mark.gen_test(timeout=90)
async def test_default_session_is_per_connection_and_closed_with_it(server):
    a = await Client.connect(server.url())
    b = await Client.connect(server.url())
    _, ra = await a.execute("secret = 'a'")
    _, rb = await b.execute("'secret' in dir()")
    assert ra["session_id"] != rb["session_id"]
    assert rb["result"]["text/plain"] == "False"
    assert ra["session_id"] in server.sessions()
    a.close()
    b.close()
    for _ in range(100):
        if ra["session_id"] not in server.sessions() and rb["session_id"] not in server.sessions():
            break
        await asyncio.sleep(0.1)
    assert ra["session_id"] not in server.sessions()
    assert rb["session_id"] not in server.sessions()


@pytest.mark.gen_test(timeout=90)
async def test_one_session_runs_in_order_and_sessions_run_concurrently(server, shared_session):
    client = await Client.connect(server.url())
    other = sid()
    await client.execute("import time; order = []", session_id=shared_session)
    await client.execute("import time", session_id=other)
    # Three quick sends to one session: run one at a time, in arrival order.
    for i in range(3):
        await client.send({"type": "execute", "code": f"time.sleep(0.2); order.append({i}); order[:]",
                           "session_id": shared_session, "execution_id": f"order-{i}"})
    results = [await client.wait_for(lambda m, i=i: m.get("execution_id") == f"order-{i}") for i in range(3)]
    assert [r["result"]["text/plain"] for r in results] == ["[0]", "[0, 1]", "[0, 1, 2]"]

    # Two sessions sleeping 1 s each finish in about 1 s, and never see each other's output.
    start = time.monotonic()
    await client.send({"type": "execute_streaming", "code": "for i in range(5): print('A', i); time.sleep(0.2)",
                       "session_id": shared_session, "execution_id": "conc-a"})
    await client.send({"type": "execute_streaming", "code": "for i in range(5): print('B', i); time.sleep(0.2)",
                       "session_id": other, "execution_id": "conc-b"})
    ra = await client.wait_for(lambda m: m.get("execution_id") == "conc-a" and m["type"] == "execution_result")
    rb = await client.wait_for(lambda m: m.get("execution_id") == "conc-b" and m["type"] == "execution_result")
    assert time.monotonic() - start < 1.8
    assert ra["output"] == [f"A {i}" for i in range(5)]
    assert rb["output"] == [f"B {i}" for i in range(5)]
    leftovers = [m for m in client.buffer if m["type"] == "execution_update"]
    assert all(m["update"]["text"].startswith("A") for m in leftovers if m["execution_id"] == "conc-a")
    assert all(m["update"]["text"].startswith("B") for m in leftovers if m["execution_id"] == "conc-b")
    server.call(server.manager.shutdown_session(other))
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_working_directory_and_environment_are_literal_and_per_execution(server, shared_session):
    client = await Client.connect(server.url())
    # A directory inside the session's workspace (a sandboxed session may use no other).
    _, r = await client.execute("import os; os.makedirs('wd', exist_ok=True); print(os.path.realpath('wd'))",
                                session_id=shared_session)
    tmp_path = r["output"][0]
    nasty = "it's \"quoted\"\nline2'); import os; os._exit(3) #"
    _, r = await client.execute(
        "import os, json\nprint(json.dumps([os.getcwd(), os.environ['NASTY'], os.environ['PLAIN']]))",
        session_id=shared_session,
        config={"working_directory": tmp_path, "environment": {"NASTY": nasty, "PLAIN": "1"}},
    )
    assert r["status"] == "completed", r
    assert json.loads(r["output"][0]) == [tmp_path, nasty, "1"]
    _, r = await client.execute(f"(os.getcwd() == {tmp_path!r}, 'NASTY' in os.environ)",
                                session_id=shared_session)
    assert r["result"]["text/plain"] == "(False, False)"
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_missing_working_directory_is_a_validation_error(server, shared_session):
    client = await Client.connect(server.url())
    _, r = await client.execute("1", session_id=shared_session, execution_id="bad-cwd",
                                config={"working_directory": "/no/such/dir/icpy"})
    assert r["type"] == "error" and r["code"] == "validation_error"
    assert r["field"] == "config.working_directory" and r["execution_id"] == "bad-cwd"
    _, r = await client.execute("2", session_id=shared_session)
    assert r["output"] == ["2"]
    client.close()


@pytest.mark.gen_test(timeout=90)
async def test_timeout_interrupts_and_keeps_state(server):
    session = sid()
    client = await Client.connect(server.url())
    await client.execute("kept = 'yes'", session_id=session)
    start = time.monotonic()
    _, r = await client.execute("while True: pass", session_id=session, config={"timeout": 1})
    assert r["status"] == "timeout" and r["kernel_restarted"] is False
    assert r["exit_code"] == 1
    assert time.monotonic() - start < 4
    _, r = await client.execute("kept", session_id=session)
    assert r["result"]["text/plain"] == "'yes'"
    server.call(server.manager.shutdown_session(session))
    client.close()


@pytest.mark.gen_test(timeout=90)
async def test_timeout_restarts_a_kernel_that_ignores_interrupts(server):
    session = sid()
    client = await Client.connect(server.url())
    await client.execute("lost = 1", session_id=session)
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
    start = time.monotonic()
    _, r = await client.execute(code, session_id=session, config={"timeout": 1})
    assert r["status"] == "timeout" and r["kernel_restarted"] is True
    assert time.monotonic() - start < 15
    _, r = await client.execute("'lost' in dir(), 1 + 1", session_id=session)
    assert r["status"] == "completed" and r["result"]["text/plain"] == "(False, 2)"
    server.call(server.manager.shutdown_session(session))
    client.close()


@pytest.mark.gen_test(timeout=90)
async def test_kernel_death_is_reported_and_session_recovers(server):
    session = sid()
    client = await Client.connect(server.url())
    _, r = await client.execute("import os; os._exit(1)", session_id=session)
    assert r["status"] == "failed"
    assert r["error"]["ename"] == "KernelDied"
    assert r["kernel_restarted"] is True
    _, r = await client.execute("1 + 1", session_id=session)
    assert r["status"] == "completed" and r["output"] == ["2"]
    server.call(server.manager.shutdown_session(session))
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_output_over_the_limit_is_cut_and_flagged(server, shared_session):
    client = await Client.connect(server.url())
    events, r = await client.execute("print('x' * 5000); print('more')", streaming=True,
                                     session_id=shared_session, config={"max_output_size": 1000})
    assert r["truncated"] is True and r["status"] == "completed"
    streams = [e["update"] for e in events if e["type"] == "execution_update"]
    stdout = "".join(u["text"] for u in streams if u["name"] == "stdout")
    assert stdout == "x" * 1000
    assert any("output truncated" in u["text"] for u in streams if u["name"] == "stderr")
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_bad_input_gets_typed_errors_and_the_connection_keeps_working(server, shared_session):
    client = await Client.connect(server.url())
    bystander = await Client.connect(server.url())
    cases = [
        ("{not json", "invalid_json", None),
        ("[1, 2]", "invalid_json", None),
        ({"type": "execute", "execution_id": "e1"}, "validation_error", "code"),
        ({"type": "execute", "code": "", "execution_id": "e2"}, "validation_error", "code"),
        ({"type": "execute", "code": 5}, "validation_error", "code"),
        ({"type": "execute", "code": "1", "config": {"timeout": -1}}, "validation_error", "config.timeout"),
        ({"type": "execute", "code": "1", "config": {"timeout": "soon"}}, "validation_error", "config.timeout"),
        ({"type": "execute", "code": "1", "config": {"environment": {"A": 1}}}, "validation_error", "config.environment"),
        ({"type": "execute", "code": "1", "config": {"environment": ["A"]}}, "validation_error", "config.environment"),
        ({"type": "execute", "code": "1", "config": []}, "validation_error", "config"),
        ({"type": "execute", "code": "1", "session_id": 7}, "validation_error", "session_id"),
        ({"type": "execute", "code": "1", "language": "cobol"}, "unknown_language", None),
        ({"type": "teleport"}, "unknown_type", None),
        ({"code": "1"}, "unknown_type", None),
    ]
    for frame, code, field in cases:
        await client.send(frame)
        err = await client.next()
        assert err["type"] == "error", frame
        assert err["code"] == code, (frame, err)
        assert {"type", "code", "message", "timestamp"} <= set(err)
        if field:
            assert err["field"] == field, (frame, err)
    missing = {"type": "execute", "execution_id": "e1"}
    await client.send(missing)
    err = await client.next()
    assert err["message"] == "No code provided for execution" and err["execution_id"] == "e1"
    await client.send({"type": "execute", "code": "1", "language": "cobol"})
    err = await client.next()
    assert "python" in err["available"]
    _, r = await client.execute("'still fine'", session_id=shared_session)
    assert r["status"] == "completed"
    _, r = await bystander.execute("'me too'", session_id=shared_session)
    assert r["status"] == "completed" and not bystander.buffer
    client.close()
    bystander.close()


@pytest.mark.gen_test(timeout=30)
async def test_token_is_required(server):
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as missing:
        await Client.connect(server.url(token=None))
    assert missing.value.code == 401
    with pytest.raises(HTTPClientError) as wrong:
        await Client.connect(server.url(token="wrong"))
    assert wrong.value.code == 403
    client = await Client.connect(server.url(token=None), headers={"Authorization": f"Bearer {server.settings.token}"})
    assert client.welcome["type"] == "welcome"
    client.close()


@pytest.mark.gen_test(timeout=30)
async def test_foreign_origin_is_refused(server):
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as refused:
        await Client.connect(server.url(), headers={"Origin": "http://evil.example"})
    assert refused.value.code == 403
    same = await Client.connect(server.url(), headers={"Origin": f"http://127.0.0.1:{server.port}"})
    assert same.welcome["type"] == "welcome"
    same.close()
