"""All three languages through the same /ws protocol (issue: our own Bash and Node.js kernels)."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from .harness import Client


def sid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def bash_session():
    return sid("sh")


@pytest.fixture(scope="module")
def js_session():
    return sid("js")


@pytest.mark.gen_test(timeout=60)
async def test_languages_are_announced(server):
    client = await Client.connect(server.url())
    assert set(client.welcome["languages"]) >= {"python", "javascript", "bash"}
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_bash_state_streams_and_exit_codes(server, bash_session):
    client = await Client.connect(server.url())
    _, r = await client.execute("cd /tmp && export GREETING=hi\ngreet() { echo \"$GREETING $1\"; }",
                                language="bash", session_id=bash_session)
    assert r["status"] == "completed" and r["exit_code"] == 0 and r["language"] == "bash"
    events, r = await client.execute("greet world; echo oops >&2; pwd", streaming=True,
                                     language="sh", session_id=bash_session)
    streams = [e["update"] for e in events if e["type"] == "execution_update"]
    assert {u["name"] for u in streams} == {"stdout", "stderr"}
    assert r["output"] == ["hi world", "/tmp"] and r["errors"] == ["oops"]
    _, r = await client.execute("false", language="bash", session_id=bash_session)
    assert r["status"] == "failed" and r["exit_code"] == 1 and r["error"]["ename"] == "ExitStatus"
    _, r = await client.execute("(exit 7)", language="bash", session_id=bash_session)
    assert r["exit_code"] == 7
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_bash_exit_restarts_the_shell_and_says_so(server):
    session = sid("sh-exit")
    client = await Client.connect(server.url())
    await client.execute("X=1", language="bash", session_id=session)
    _, r = await client.execute("exit 3", language="bash", session_id=session)
    assert r["status"] == "failed" and r["exit_code"] == 3 and r["kernel_restarted"] is True
    _, r = await client.execute("echo \"[${X-gone}]\"", language="bash", session_id=session)
    assert r["output"] == ["[gone]"]
    server.call(server.manager.shutdown_session(session))
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_bash_timeout_interrupts_and_keeps_state(server, bash_session):
    client = await Client.connect(server.url())
    await client.execute("KEEP=yes", language="bash", session_id=bash_session)
    start = time.monotonic()
    _, r = await client.execute("while true; do :; done", language="bash", session_id=bash_session,
                                config={"timeout": 1})
    assert r["status"] == "timeout" and r["kernel_restarted"] is False
    assert time.monotonic() - start < 4
    _, r = await client.execute("echo $KEEP", language="bash", session_id=bash_session)
    assert r["output"] == ["yes"]
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_bash_context_is_literal(server):
    bash_session = sid("sh-ctx")  # fresh: its cwd is still the session's workspace
    client = await Client.connect(server.url())
    _, r = await client.execute("mkdir -p wd && realpath wd", language="bash", session_id=bash_session)
    tmp_path = r["output"][0]
    nasty = "a'b\"c $(touch /tmp/pwned) `x`\nline2"
    _, r = await client.execute('printf "%s|%s" "$PWD" "$NASTY"', language="bash", session_id=bash_session,
                                config={"working_directory": tmp_path, "environment": {"NASTY": nasty}})
    assert r["status"] == "completed", r
    assert "\n".join(r["output"]) == f"{tmp_path}|{nasty}"
    _, r = await client.execute('echo "${NASTY-unset}"; pwd', language="bash", session_id=bash_session)
    assert r["output"][0] == "unset" and r["output"][1] != tmp_path
    server.call(server.manager.shutdown_session(bash_session))
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_javascript_repl_semantics_result_and_streams(server, js_session):
    client = await Client.connect(server.url())
    _, r = await client.execute("let x = 1; const y = 2; class A {}; function f() { return x + y }",
                                language="javascript", session_id=js_session)
    assert r["status"] == "completed", r
    _, r = await client.execute("let x = 10; x + f()", language="js", session_id=js_session)
    assert r["status"] == "completed" and r["result"]["text/plain"] == "22"
    events, r = await client.execute(
        "console.log('a'); console.error('b'); await new Promise(res => setTimeout(res, 300)); console.log('c'); 'done'",
        streaming=True, language="node", session_id=js_session)
    assert r["output"] == ["a", "c", "'done'"] and r["errors"] == ["b"]
    assert [e["seq"] for e in events if e["type"] == "execution_update"] == list(
        range(1, 1 + sum(e["type"] == "execution_update" for e in events)))
    _, r = await client.execute("undefined", language="javascript", session_id=js_session)
    assert r["result"] is None and r["status"] == "completed"
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_javascript_errors_and_interrupt_keep_state(server, js_session):
    client = await Client.connect(server.url())
    _, r = await client.execute("nope.value", language="javascript", session_id=js_session)
    assert r["status"] == "failed" and r["error"]["ename"] == "ReferenceError" and r["exit_code"] == 1
    await client.execute("globalThis.kept = 42", language="javascript", session_id=js_session)
    start = time.monotonic()
    _, r = await client.execute("while (true) {}", language="javascript", session_id=js_session,
                                config={"timeout": 1})
    assert r["status"] == "timeout" and r["kernel_restarted"] is False
    assert time.monotonic() - start < 4
    _, r = await client.execute("kept + 1", language="javascript", session_id=js_session)
    assert r["result"]["text/plain"] == "43"
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_javascript_rich_display_and_context(server, js_session):
    client = await Client.connect(server.url())
    _, r = await client.execute("const fs = require('fs'); fs.mkdirSync('wd', {recursive: true}); console.log(fs.realpathSync('wd'))",
                                language="javascript", session_id=js_session)
    tmp_path = r["output"][0]
    events, r = await client.execute("display.html('<b>hi</b>')", streaming=True,
                                     language="javascript", session_id=js_session)
    displays = [e["update"] for e in events if e["type"] == "execution_update" and e["update"]["kind"] == "display"]
    assert displays and displays[0]["data"]["text/html"] == "<b>hi</b>"
    assert any(o["output_type"] == "display_data" for o in r["outputs"])
    # An updatable display: the updates stream as such, and `outputs` holds the last version.
    events, r = await client.execute(
        "const bar = display.text('0%', { display_id: 'bar' }); bar.update('50%'); display.update('bar', '100%')",
        streaming=True, language="javascript", session_id=js_session)
    shown = [e["update"] for e in events if e["type"] == "execution_update" and e["update"]["kind"] == "display"]
    assert [(d["display_id"], d["update"], d["data"]["text/plain"]) for d in shown] == [
        ("bar", False, "0%"), ("bar", True, "'50%'"), ("bar", True, "'100%'")]
    assert [o["data"]["text/plain"] for o in r["outputs"] if o["output_type"] == "display_data"] == ["'100%'"]
    nasty = "q'\"`${1+1}`\n\u2028"
    _, r = await client.execute("console.log(JSON.stringify([process.cwd(), process.env.NASTY]))",
                                language="javascript", session_id=js_session,
                                config={"working_directory": tmp_path, "environment": {"NASTY": nasty}})
    assert json.loads(r["output"][0]) == [tmp_path, nasty]
    _, r = await client.execute("process.env.NASTY === undefined", language="javascript", session_id=js_session)
    assert r["result"]["text/plain"] == "true"
    client.close()
