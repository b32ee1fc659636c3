"""Broadcast: topic subscriptions, session events, attaching to another client's session, and
a subscriber that stops reading (it must cost nobody anything but itself)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from .harness import Client, module_server
from .rawws import RawSocket

QUEUE = 16


server = module_server(send_queue_size=QUEUE, max_output_size=64 * 1024 * 1024)


@pytest.fixture(scope="module")
def shared():
    return "bc-" + uuid.uuid4().hex[:8]


def sid() -> str:
    return "bc-" + uuid.uuid4().hex[:8]


async def rpc(client: Client, method: str, **params):
    return await client.rpc(method, params)


@pytest.mark.gen_test(timeout=60)
async def test_subscribe_validation_and_acks(server):
    client = await Client.connect(server.url())
    for bad in ({}, {"topics": []}, {"topics": "code_execution.*"}, {"topics": [""]}, {"topics": [5]}):
        await client.send({"type": "subscribe", **bad})
        err = await client.next()
        assert err["code"] == "validation_error" and err["field"] == "topics", (bad, err)
    await client.send({"type": "subscribe", "topics": ["code_execution.*", "session.*"], "request_id": 7})
    ack = await client.next()
    assert ack["type"] == "subscribed" and ack["request_id"] == 7
    assert ack["topics"] == ["code_execution.*", "session.*"]
    await client.send({"type": "unsubscribe", "topics": ["session.*"]})
    ack = await client.next()
    assert ack["type"] == "unsubscribed" and ack["topics"] == ["session.*"]
    assert ack["remaining"] == ["code_execution.*"]
    await client.send({"type": "unsubscribe"})  # no topics: all of them
    ack = await client.next()
    assert ack["type"] == "unsubscribed" and ack["remaining"] == []
    client.close()


@pytest.mark.gen_test(timeout=90)
async def test_execution_and_session_events_reach_subscribers(server):
    watcher = await Client.connect(server.url())
    await watcher.send({"type": "subscribe", "topics": ["code_execution.*", "session.*"]})
    assert (await watcher.next())["type"] == "subscribed"
    runner = await Client.connect(server.url())
    session = sid()
    _, result = await runner.execute("print('hello')\n6*7", session_id=session)
    eid = result["execution_id"]

    def mine(m):
        return m.get("execution_id") == eid or m.get("session_id") == session

    seen = []
    while not seen or seen[-1]["type"] != "code_execution_completed":
        seen.append(await watcher.wait_for(mine, 30))
    session_events = [m for m in seen if m["type"] in ("session_started", "kernel_status")]
    assert session_events[0]["topic"] == f"session.{session}.kernel_status"  # idle, then started
    assert any(m["type"] == "session_started" and m["topic"] == f"session.{session}.started"
               for m in session_events)
    assert [m["status"] for m in session_events if m["type"] == "kernel_status"][-2:] == ["busy", "idle"]
    execution = [m for m in seen if m["type"].startswith("code_execution_")]
    assert [m["type"] for m in execution] == ["code_execution_started", "code_execution_update",
                                             "code_execution_update", "code_execution_completed"]
    for m in execution:
        assert m["execution_id"] == eid and m["session_id"] == session and m["language"] == "python"
        assert m["connection_id"] == runner.welcome["connection_id"]
        assert m["topic"] == "code_execution." + m["type"].removeprefix("code_execution_")
    started, printed, value, completed = execution
    assert started["status"] == "running" and started["code"] == "print('hello')\n6*7"
    assert printed["seq"] == 1 and printed["update"]["text"] == "hello\n"
    assert value["seq"] == 2 and value["update"]["data"] == {"text/plain": "42"}
    assert completed["status"] == "completed" and completed["result"] == result

    reply = await rpc(runner, "session.restart", session_id=session)
    assert "result" in reply, reply
    restarted = await watcher.wait_for(lambda m: m.get("type") == "session_restarted")
    assert restarted["reason"] == "requested" and restarted["topic"] == f"session.{session}.restarted"
    await rpc(runner, "session.shutdown", session_id=session)
    down = await watcher.wait_for(lambda m: m.get("type") == "session_shutdown")
    assert down["session_id"] == session and down["topic"] == f"session.{session}.shutdown"
    watcher.close()
    runner.close()


@pytest.mark.gen_test(timeout=60)
async def test_topic_patterns_filter(server, shared):
    only_done = await Client.connect(server.url())
    await only_done.send({"type": "subscribe", "topics": ["code_execution.completed"]})
    await only_done.next()
    runner = await Client.connect(server.url())
    _, r1 = await runner.execute("print(1)", session_id=shared)
    done = await only_done.wait_for(lambda m: m.get("execution_id") == r1["execution_id"])
    assert done["type"] == "code_execution_completed"
    await only_done.send({"type": "unsubscribe", "topics": ["code_execution.completed"]})
    await only_done.wait_for(lambda m: m["type"] == "unsubscribed")
    _, r2 = await runner.execute("print(2)", session_id=shared)
    await asyncio.sleep(0.3)
    await only_done.send({"type": "ping"})
    await only_done.wait_for(lambda m: m["type"] == "pong")
    assert not [m for m in only_done.buffer if m.get("execution_id") == r2["execution_id"]]
    only_done.close()
    runner.close()


@pytest.mark.gen_test(timeout=90)
async def test_attach_follows_another_clients_session(server, shared):
    owner = await Client.connect(server.url())
    guest = await Client.connect(server.url())
    await guest.send({"type": "attach", "session_id": "no-such-session"})
    err = await guest.next()
    assert err["code"] == "session_not_found"
    await owner.execute("x = 1", session_id=shared)  # the session exists now
    await guest.send({"type": "attach", "session_id": shared, "request_id": "a1"})
    ack = await guest.next()
    assert ack["type"] == "attached" and ack["session_id"] == shared and ack["request_id"] == "a1"
    assert ack["session"]["session_id"] == shared

    events, result = await owner.execute("for i in range(3): print(i)\nx + 1", streaming=True,
                                         session_id=shared)
    eid = result["execution_id"]
    mirrored = []
    while not mirrored or mirrored[-1]["type"] != "execution_result":
        mirrored.append(await guest.wait_for(lambda m: m.get("execution_id") == eid))
    assert mirrored == events  # the very messages the owner got

    _, mine = await guest.execute("x + 10", session_id=shared)  # collaboration: same state
    assert mine["output"] == ["11"]

    await guest.send({"type": "detach", "session_id": shared})
    detached = await guest.wait_for(lambda m: m["type"] == "detached")
    assert detached["detached"] is True
    _, later = await owner.execute("x", session_id=shared)
    await guest.send({"type": "ping"})
    await guest.wait_for(lambda m: m["type"] == "pong")
    assert not [m for m in guest.buffer if m.get("execution_id") == later["execution_id"]]
    owner.close()
    guest.close()


@pytest.mark.gen_test(timeout=90)
async def test_attach_mid_execution_replays_it_from_the_start(server):
    session = sid()
    owner = await Client.connect(server.url())
    await owner.execute("1", session_id=session)
    eid = "mid-" + uuid.uuid4().hex[:8]
    await owner.send({"type": "execute_streaming", "execution_id": eid, "session_id": session,
                      "code": "import time\nfor i in range(10):\n    print(i, flush=True)\n    time.sleep(0.05)"})
    await owner.wait_for(lambda m: m.get("type") == "execution_update" and m["seq"] >= 3)
    guest = await Client.connect(server.url())
    await guest.send({"type": "attach", "session_id": session})
    got = []
    while not got or got[-1]["type"] != "execution_result":
        got.append(await guest.wait_for(lambda m: m.get("execution_id") == eid))
    assert got[0]["type"] == "execution_started"
    seqs = [m["seq"] for m in got if m["type"] == "execution_update"]
    assert seqs == list(range(1, len(seqs) + 1))
    assert "".join(m["update"]["text"] for m in got if m["type"] == "execution_update") == \
        "".join(f"{i}\n" for i in range(10))
    # Shutting the session down detaches its guests.
    await rpc(owner, "session.shutdown", session_id=session)
    await guest.wait_for(lambda m: m["type"] == "session_shutdown")
    bye = await guest.wait_for(lambda m: m["type"] == "detached")
    assert bye["reason"] == "session_shutdown"
    owner.close()
    guest.close()


@pytest.mark.gen_test(timeout=120)
async def test_a_subscriber_that_never_reads_delays_nobody(server, shared):
    # 12 MB of updates: more than the kernel's socket buffers hold (a few MB on loopback), so
    # the stuck reader's queue must fill. clear_output keeps the result itself small.
    code = ("from IPython.display import clear_output\n"
            "for i in range(300):\n"
            "    print(str(i % 10) * 40000, flush=True)\n"
            "    clear_output()\n"
            "print('end')")
    runner = await Client.connect(server.url())
    await runner.execute("1", session_id=shared)
    t0 = time.monotonic()
    _, baseline = await runner.execute(code, session_id=shared)
    alone = time.monotonic() - t0
    assert baseline["status"] == "completed"

    stuck = RawSocket(server.port, rcvbuf=4096)
    assert stuck.read_json()["type"] == "welcome"
    stuck.send_json({"type": "subscribe", "topics": ["code_execution.*"]})
    assert stuck.read_json()["type"] == "subscribed"
    # From here on `stuck` reads nothing while ~12 MB of broadcast is meant for it.
    t0 = time.monotonic()
    _, result = await runner.execute(code, session_id=shared)
    crowded = time.monotonic() - t0
    assert result["status"] == "completed" and result["output"] == ["end"]
    assert crowded < alone * 3 + 2, (alone, crowded)
    # ...and another client's small execution is answered at once.
    t0 = time.monotonic()
    _, quick = await runner.execute("'quick'", session_id=shared)
    assert quick["output"] == ["'quick'"] and time.monotonic() - t0 < 5

    # Reading now, the stuck client finds the slow_consumer error after what did fit.
    error, before = stuck.read_until(lambda m: m.get("type") == "error", timeout=30)
    assert error["code"] == "slow_consumer", error
    assert error["topics"] == ["code_execution.*"] and error["sessions"] == []
    assert all(m["type"].startswith("code_execution_") for m in before)
    assert len(before) < 600  # it was dropped, not buffered without bound
    print(f"alone {alone:.2f}s, with a stuck subscriber {crowded:.2f}s, "
          f"{len(before)} broadcasts delivered before the drop")
    # It stays connected and usable; nothing more is broadcast to it.
    _, after = await runner.execute("'after'", session_id=shared)
    stuck.send_json({"type": "ping"})
    pong, extra = stuck.read_until(lambda m: m.get("type") == "pong")
    assert not [m for m in extra if m.get("execution_id") == after["execution_id"]]
    stuck.close()
    runner.close()
