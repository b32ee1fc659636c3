"""History: get_result, the history listing and its cursor, REST, idempotent retries, and a
history that survives a server restart."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from icpy_kernels.provisioning.workspace import workspace_for

from .harness import TOKEN, Client, ThreadedServer


def sid() -> str:
    return "h-" + uuid.uuid4().hex[:8]


APPEND = "with open({path!r}, 'a') as f:\n    f.write('ran\\n')\nprint('appended')"


async def ask(client: Client, message: dict) -> dict:
    return await client.ask(message)


@pytest.mark.gen_test(timeout=90)
async def test_get_result_running_finished_and_unknown(server):
    client = await Client.connect(server.url())
    session = sid()
    await client.execute("1", session_id=session)
    eid = "g-" + uuid.uuid4().hex[:8]
    await client.send({"type": "execute", "execution_id": eid, "session_id": session,
                       "code": "import time\nprint('early', flush=True)\ntime.sleep(1.5)\nprint('late')"})
    await asyncio.sleep(0.7)
    snap = await ask(client, {"type": "get_result", "execution_id": eid})
    assert snap["type"] == "execution_result" and snap["status"] == "running"
    assert snap["output"] == ["early"]
    result = await client.wait_for(lambda m: m.get("execution_id") == eid and "request_id" not in m)
    assert result["status"] == "completed" and result["output"] == ["early", "late"]
    again = await ask(client, {"type": "get_result", "execution_id": eid})
    assert {k: v for k, v in again.items() if k != "request_id"} == result
    err = await ask(client, {"type": "get_result", "execution_id": "nope"})
    assert err["type"] == "error" and err["code"] == "execution_not_found" and err["execution_id"] == "nope"
    client.close()


@pytest.mark.gen_test(timeout=90)
async def test_history_filters_and_pages(server):
    client = await Client.connect(server.url())
    a, b = sid(), sid()
    ids = []
    for i, session in enumerate([a, b, a, a]):
        _, r = await client.execute(f"{i}", session_id=session)
        ids.append(r["execution_id"])
    reply = await ask(client, {"type": "history", "session_id": a})
    assert reply["type"] == "history"
    entries = reply["entries"]
    assert [e["execution_id"] for e in entries] == [ids[3], ids[2], ids[0]]  # newest first
    first = entries[0]
    assert first["code"] == "3" and first["status"] == "completed" and first["session_id"] == a
    assert first["language"] == "python" and first["exit_code"] == 0 and first["truncated"] is False
    assert first["connection_id"] == client.welcome["connection_id"]
    assert first["started_at"] <= first["finished_at"] and first["error"] is None
    page = await ask(client, {"type": "history", "session_id": a, "limit": 2})
    assert [e["execution_id"] for e in page["entries"]] == [ids[3], ids[2]]
    assert page["next_before"] == ids[2]
    rest = await ask(client, {"type": "history", "session_id": a, "limit": 2, "before": page["next_before"]})
    assert [e["execution_id"] for e in rest["entries"]] == [ids[0]] and rest["next_before"] is None
    assert [e["execution_id"] for e in (await ask(client, {"type": "history", "language": "python",
                                                           "limit": 1}))["entries"]] == [ids[3]]
    for bad, field in (({"limit": 0}, "limit"), ({"limit": 5000}, "limit"), ({"limit": "x"}, "limit"),
                       ({"session_id": 3}, "session_id"), ({"language": ""}, "language")):
        err = await ask(client, {"type": "history", **bad})
        assert err["code"] == "validation_error" and err["field"] == field, (bad, err)
    err = await ask(client, {"type": "history", "before": "no-such-id"})
    assert err["code"] == "execution_not_found"

    # The same over REST.
    http = AsyncHTTPClient()
    base = f"http://127.0.0.1:{server.port}/api/executions"
    headers = {"Authorization": f"token {TOKEN}"}
    body = json.loads((await http.fetch(f"{base}?session_id={a}&limit=2", headers=headers)).body)
    assert body == {"entries": page["entries"], "next_before": ids[2]}
    one = json.loads((await http.fetch(f"{base}/{ids[0]}", headers=headers)).body)
    assert one["execution_id"] == ids[0] and one["output"] == ["0"]
    with pytest.raises(HTTPClientError) as exc:
        await http.fetch(f"{base}?limit=0", headers=headers)
    assert exc.value.code == 400
    client.close()


@pytest.mark.gen_test(timeout=90)
async def test_a_retried_execute_runs_once(server):
    code = APPEND.format(path="ran.txt")  # in the session's workspace
    client = await Client.connect(server.url())
    session = sid()
    eid = "idem-" + uuid.uuid4().hex[:8]
    # Twice at once (the second arrives while the first runs), then once more afterwards.
    message = {"type": "execute_streaming", "code": code, "session_id": session, "execution_id": eid}
    await client.send(message)
    await client.send(message)
    results = []
    while len(results) < 2:
        results.append(await client.wait_for(lambda m: m.get("type") == "execution_result"))
    other = await Client.connect(server.url())
    _, third = await other.execute(code, session_id=session, execution_id=eid)
    _, check = await other.execute("print(repr(open('ran.txt').read()))", session_id=session)
    assert check["output"] == ["'ran\\n'"]
    assert results[0] == results[1] == third
    assert third["output"] == ["appended"]
    # Each streaming request saw the whole execution once.
    updates = [m for m in client.buffer if m.get("type") == "execution_update"]
    assert [m["seq"] for m in updates] == [1, 1]
    client.close()
    other.close()


@pytest.mark.gen_test(timeout=120)
async def test_history_survives_a_restart_and_so_does_idempotency(tmp_path):
    db = str(tmp_path / "history.sqlite3")
    # The same session id on both servers gets the same (kept) workspace.
    kept = {"workspace_root": str(tmp_path / "ws"), "keep_workspaces": True}
    session = sid()
    ran = workspace_for(kept["workspace_root"], session) / "ran.txt"
    code = APPEND.format(path="ran.txt")
    eid = "persist-" + uuid.uuid4().hex[:8]
    first = ThreadedServer(db=db, **kept).start()
    try:
        client = await Client.connect(first.url())
        events, result = await client.execute(code, streaming=True, session_id=session, execution_id=eid)
        client.close()
    finally:
        first.stop()
    assert ran.read_text() == "ran\n"
    second = ThreadedServer(db=db, **kept).start()
    try:
        client = await Client.connect(second.url())
        got = await ask(client, {"type": "get_result", "execution_id": eid})
        assert {k: v for k, v in got.items() if k != "request_id"} == result
        listed = await ask(client, {"type": "history", "limit": 1})
        assert listed["entries"][0]["execution_id"] == eid
        # Resume from the store: the same update messages.
        await client.send({"type": "resume", "execution_id": eid, "after_seq": 0})
        assert (await client.next())["type"] == "resumed"
        replay = [await client.next() for _ in events if _["type"] == "execution_update"]
        assert replay == [m for m in events if m["type"] == "execution_update"]
        assert await client.next() == result
        # A retry after the restart returns the stored result; no kernel, no second run.
        _, again = await client.execute(code, session_id=session, execution_id=eid)
        assert again == result and ran.read_text() == "ran\n"
        assert second.sessions() == {}
        client.close()
    finally:
        second.stop()


@pytest.mark.gen_test(timeout=60)
async def test_history_and_resume_over_jsonrpc(server):
    client = await Client.connect(server.url())
    session = sid()
    events, result = await client.execute("print('a')\nprint('b', flush=True)\n1", streaming=True,
                                          session_id=session)
    eid = result["execution_id"]

    async def call(method, **params):
        return await client.rpc(method, params)

    listed = await call("history.list", session_id=session)
    assert [e["execution_id"] for e in listed["result"]["entries"]] == [eid]
    got = await call("history.get", execution_id=eid)
    assert got["result"] == result
    missing = await call("history.get", execution_id="nope")
    assert missing["error"]["data"]["code"] == "execution_not_found"
    resumed = await call("execute.resume", execution_id=eid, after_seq=1)
    assert resumed["result"] == result
    notes = [m for m in client.buffer if m.get("method") == "execute.update"]
    live = [m for m in events if m["type"] == "execution_update" and m["seq"] > 1]
    assert [n["params"] for n in notes] == [{k: m[k] for k in ("execution_id", "seq", "update")} for m in live]
    client.close()
