"""Shared sessions over JSON-RPC against real kernels: events.subscribe/unsubscribe, session.attach/
detach, execute.get_result, and a JSON-RPC subscriber that stops reading."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from .harness import Client, ThreadedServer, module_server
from .rawws import RawSocket

QUEUE = 16


server = module_server(send_queue_size=QUEUE, max_output_size=64 * 1024 * 1024)


@pytest.fixture(scope="module")
def shared():
    return "rs-" + uuid.uuid4().hex[:8]


async def rpc(client: Client, method: str, *, wrapped: bool = False, **params: Any) -> dict[str, Any]:
    return await client.rpc(method, params, wrapped=wrapped)


def notified(method: str, **match: Any):
    """A predicate for a bare notification ``method`` whose params hold ``match``."""
    def predicate(m: dict[str, Any]) -> bool:
        return m.get("method") == method and "id" not in m and \
            all(m["params"].get(k) == v for k, v in match.items())
    return predicate


def bus_size(server: ThreadedServer) -> int:
    async def size() -> int:
        return len(server.server.service.hub.bus)
    return server.call(size())


@pytest.mark.gen_test(timeout=60)
async def test_subscribe_validation_acks_and_cleanup(server):
    before = bus_size(server)
    client = await Client.connect(server.url())
    for bad in ({}, {"topics": []}, {"topics": "code_execution.*"}, {"topics": [""]}, {"topics": [5]}):
        reply = await rpc(client, "events.subscribe", **bad)
        assert reply["error"]["code"] == -32602, (bad, reply)
        assert reply["error"]["data"]["code"] == "validation_error"
        assert reply["error"]["data"]["field"] == "topics"
    reply = await rpc(client, "events.subscribe", topics=["code_execution.*", "session.*"])
    assert reply["result"] == {"topics": ["code_execution.*", "session.*"]}
    reply = await rpc(client, "events.subscribe", topics=["session.*", "x.y"])
    assert reply["result"] == {"topics": ["code_execution.*", "session.*", "x.y"]}
    reply = await rpc(client, "events.unsubscribe", topics=["session.*"])
    assert reply["result"] == {"topics": ["session.*"], "remaining": ["code_execution.*", "x.y"]}
    reply = await rpc(client, "events.unsubscribe")  # no topics: all of them
    assert reply["result"] == {"topics": [], "remaining": []}
    reply = await rpc(client, "events.unsubscribe", topics=[3])
    assert reply["error"]["data"]["field"] == "topics"
    await rpc(client, "events.subscribe", topics=["code_execution.*"])
    assert bus_size(server) == before + 1
    client.close()  # the socket's subscription goes with it
    deadline = time.monotonic() + 10
    while bus_size(server) != before:
        assert time.monotonic() < deadline, "the subscription outlived its connection"
        await asyncio.sleep(0.05)


@pytest.mark.gen_test(timeout=90)
async def test_broadcast_arrives_as_events_event_bare_and_wrapped(server, shared):
    bare = await Client.connect(server.url())
    wrapped = await Client.connect(server.url())
    assert "result" in await rpc(bare, "events.subscribe", topics=["code_execution.*"])
    assert "result" in await rpc(wrapped, "events.subscribe", wrapped=True, topics=["code_execution.completed"])
    runner = await Client.connect(server.url())
    reply = await rpc(runner, "execute.code", code="print('hello')\n6*7", session_id=shared)
    result = reply["result"]
    eid = result["execution_id"]

    seen = []
    while not seen or seen[-1]["type"] != "code_execution_completed":
        frame = await bare.wait_for(lambda m: m.get("method") == "events.event"
                                    and m["params"]["execution_id"] == eid)
        assert set(frame) == {"jsonrpc", "method", "params"}
        seen.append(frame["params"])
    assert [e["type"] for e in seen] == ["code_execution_started", "code_execution_update",
                                         "code_execution_update", "code_execution_completed"]
    assert seen[0]["code"] == "print('hello')\n6*7" and seen[0]["topic"] == "code_execution.started"
    assert seen[1]["seq"] == 1 and seen[1]["update"]["text"] == "hello\n"
    assert seen[-1]["result"] == result and seen[-1]["connection_id"] == runner.welcome["connection_id"]

    frame = await wrapped.wait_for(lambda m: m.get("type") == "jsonrpc_notification")
    note = frame["notification"]
    assert note["method"] == "events.event" and note["params"]["type"] == "code_execution_completed"
    assert note["params"]["execution_id"] == eid and note["params"]["result"] == result
    await wrapped.send({"type": "ping"})
    await wrapped.wait_for(lambda m: m["type"] == "pong")
    assert not [m for m in wrapped.buffer if m.get("type") == "jsonrpc_notification"]  # completed only
    for client in (bare, wrapped, runner):
        client.close()


@pytest.mark.gen_test(timeout=120)
async def test_attach_mid_execution_then_detach(server, shared):
    owner = await Client.connect(server.url())
    guest = await Client.connect(server.url())
    reply = await rpc(guest, "session.attach", session_id="no-such-session")
    assert reply["error"]["code"] == -32002 and reply["error"]["data"]["session_id"] == "no-such-session"
    reply = await rpc(guest, "session.attach")
    assert reply["error"]["code"] == -32602 and reply["error"]["data"]["field"] == "session_id"
    reply = await rpc(guest, "session.detach", session_id="bad id")
    assert reply["error"]["code"] == -32602 and reply["error"]["data"]["field"] == "session_id"

    await rpc(owner, "execute.code", code="x = 1", session_id=shared)  # the session exists
    eid = "rs-mid-" + uuid.uuid4().hex[:8]
    await owner.send({"jsonrpc": "2.0", "id": "run", "method": "execute.code_streaming", "params": {
        "execution_id": eid, "session_id": shared,
        "code": "import time\nfor i in range(8):\n    print(i, flush=True)\n    time.sleep(0.05)\nx + 1"}})
    await owner.wait_for(lambda m: m.get("method") == "execute.update" and m["params"]["seq"] >= 3)
    reply = await rpc(guest, "session.attach", session_id=shared)
    assert reply["result"]["session_id"] == shared and reply["result"]["session"]["session_id"] == shared
    # The replay came before the response; the rest follows live.
    replayed = [m for m in guest.buffer if m.get("method", "").startswith("execute.")]
    assert replayed[0] == {"jsonrpc": "2.0", "method": "execute.started",
                           "params": {"execution_id": eid, "session_id": shared, "language": "python"}}
    assert len(replayed) >= 4
    done = await guest.wait_for(notified("execute.result", execution_id=eid))
    owned = await owner.wait_for(lambda m: m.get("id") == "run")
    assert done["params"] == owned["result"] and done["params"]["output"][-1] == "2"
    updates = [m["params"] for m in guest.buffer if m.get("method") == "execute.update"]
    assert [u["seq"] for u in updates] == list(range(1, len(updates) + 1))
    assert all(set(u) == {"execution_id", "seq", "update"} for u in updates)
    assert "".join(u["update"].get("text", "") for u in updates) == "".join(f"{i}\n" for i in range(8))
    # Session events arrive as session.event, e.g. the kernel going busy and idle.
    await guest.wait_for(notified("session.event", type="kernel_status", status="idle"))

    # The guest's own executions are its responses, not notifications.
    mine = (await rpc(guest, "execute.code", code="x + 10", session_id=shared))["result"]
    assert mine["output"] == ["11"]
    reply = await rpc(guest, "session.detach", session_id=shared)
    assert reply["result"] == {"session_id": shared, "detached": True}
    reply = await rpc(guest, "session.detach", session_id=shared)
    assert reply["result"] == {"session_id": shared, "detached": False}
    later = (await rpc(owner, "execute.code", code="x", session_id=shared))["result"]
    await guest.send({"type": "ping"})
    await guest.wait_for(lambda m: m.get("type") == "pong")
    ids = {mine["execution_id"], later["execution_id"]}
    assert not [m for m in guest.buffer if m.get("params", {}).get("execution_id") in ids]
    owner.close()
    guest.close()


@pytest.mark.gen_test(timeout=90)
async def test_shutdown_detaches_wrapped_guests(server):
    session = "rs-" + uuid.uuid4().hex[:8]
    owner = await Client.connect(server.url())
    guest = await Client.connect(server.url())
    await rpc(owner, "session.create", session_id=session)
    reply = await rpc(guest, "session.attach", wrapped=True, session_id=session)
    assert reply["result"]["session"]["state"] == "idle"
    reply = await rpc(owner, "execute.code", code="print('w')", session_id=session)
    eid = reply["result"]["execution_id"]
    wrapped = await guest.wait_for(lambda m: m.get("type") == "jsonrpc_notification"
                                   and m["notification"]["method"] == "execute.result")
    assert wrapped["notification"]["params"]["execution_id"] == eid
    await rpc(owner, "session.shutdown", session_id=session)

    def session_event(kind: str):
        return lambda m: m.get("type") == "jsonrpc_notification" and \
            m["notification"]["method"] == "session.event" and m["notification"]["params"]["type"] == kind

    down = await guest.wait_for(session_event("session_shutdown"))
    assert down["notification"]["params"]["reason"] == "requested"
    bye = await guest.wait_for(session_event("detached"))
    assert bye["notification"]["params"] == {**bye["notification"]["params"], "session_id": session,
                                             "reason": "session_shutdown"}
    owner.close()
    guest.close()


@pytest.mark.gen_test(timeout=90)
async def test_execute_get_result_running_finished_and_unknown(server, shared):
    client = await Client.connect(server.url())
    for params, code, field in (({}, -32602, "execution_id"), ({"execution_id": "no such"}, -32602, "execution_id"),
                                ({"execution_id": "never-ran-" + uuid.uuid4().hex}, -32003, None)):
        reply = await rpc(client, "execute.get_result", **params)
        assert reply["error"]["code"] == code, reply
        if field:
            assert reply["error"]["data"]["field"] == field
    eid = "rs-get-" + uuid.uuid4().hex[:8]
    await client.send({"jsonrpc": "2.0", "id": "slow", "method": "execute.code_streaming", "params": {
        "execution_id": eid, "session_id": shared,
        "code": "import time\nprint('early', flush=True)\ntime.sleep(1)\n'late'"}})
    await client.wait_for(notified("execute.update", execution_id=eid))
    running = (await rpc(client, "execute.get_result", execution_id=eid))["result"]
    assert running["status"] == "running" and running["output"] == ["early"]
    final = (await client.wait_for(lambda m: m.get("id") == "slow"))["result"]
    reply = await rpc(client, "execute.get_result", execution_id=eid)
    assert reply["result"] == final and final["output"] == ["early", "'late'"]
    assert (await rpc(client, "history.get", execution_id=eid))["result"] == final  # one operation
    client.close()


@pytest.mark.gen_test(timeout=120)
async def test_a_json_rpc_subscriber_that_never_reads_is_dropped(server, shared):
    # ~12 MB of broadcast: more than the socket buffers hold, so the stuck reader's queue fills.
    code = ("from IPython.display import clear_output\n"
            "for i in range(300):\n"
            "    print(str(i % 10) * 40000, flush=True)\n"
            "    clear_output()\n"
            "print('end')")
    runner = await Client.connect(server.url())
    await rpc(runner, "execute.code", code="1", session_id=shared)
    stuck = RawSocket(server.port, rcvbuf=4096)
    assert stuck.read_json()["type"] == "welcome"
    stuck.send_json({"jsonrpc": "2.0", "id": 1, "method": "events.subscribe", "params": {"topics": ["code_execution.*"]}})
    assert stuck.read_json()["result"] == {"topics": ["code_execution.*"]}
    t0 = time.monotonic()
    result = (await rpc(runner, "execute.code", code=code, session_id=shared))["result"]
    crowded = time.monotonic() - t0
    assert result["status"] == "completed" and result["output"] == ["end"]
    t0 = time.monotonic()
    quick = (await rpc(runner, "execute.code", code="'quick'", session_id=shared))["result"]
    assert quick["output"] == ["'quick'"] and time.monotonic() - t0 < 5

    error, before = stuck.read_until(lambda m: m.get("method") == "events.error", timeout=30)
    assert "id" not in error
    assert error["params"]["code"] == "slow_consumer", error
    assert error["params"]["topics"] == ["code_execution.*"] and error["params"]["sessions"] == []
    assert all(m["method"] == "events.event" for m in before)
    assert len(before) < 600  # dropped, not buffered without bound
    print(f"with a stuck JSON-RPC subscriber {crowded:.2f}s, {len(before)} notifications before the drop")
    # Still connected and usable; nothing more is broadcast to it until it subscribes again.
    after = (await rpc(runner, "execute.code", code="'after'", session_id=shared))["result"]
    stuck.send_json({"jsonrpc": "2.0", "id": 2, "method": "session.list"})
    reply, extra = stuck.read_until(lambda m: m.get("id") == 2)
    assert "sessions" in reply["result"]
    assert not [m for m in extra if m.get("params", {}).get("execution_id") == after["execution_id"]]
    stuck.send_json({"jsonrpc": "2.0", "id": 3, "method": "events.subscribe", "params": {"topics": ["code_execution.completed"]}})
    assert stuck.read_until(lambda m: m.get("id") == 3)[0]["result"] == {"topics": ["code_execution.completed"]}
    again = (await rpc(runner, "execute.code", code="'again'", session_id=shared))["result"]
    note, _ = stuck.read_until(lambda m: m.get("method") == "events.event")
    assert note["params"]["execution_id"] == again["execution_id"]
    stuck.close()
    runner.close()
