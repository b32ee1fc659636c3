"""Lossless reconnect: resume after a dropped socket, keepalives, dead-peer detection, and the
fate of work left behind by a client that disconnects."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
import uuid

import pytest
from tornado.httpclient import AsyncHTTPClient

from .harness import TOKEN, Client, ThreadedServer, module_server
from .rawws import RawSocket

LINES = 40
STREAM = (
    "import time\n"
    f"for i in range({LINES}):\n"
    "    print(f'line {i:03d}', flush=True)\n"
    "    time.sleep(0.05)\n"
)
EXPECTED = "".join(f"line {i:03d}\n" for i in range(LINES))


server = module_server(keepalive_interval=0.5)


@pytest.fixture(scope="module")
def session_id():
    return "resume-" + uuid.uuid4().hex[:8]


def text(updates) -> str:
    return "".join(m["update"]["text"] for m in updates if m["update"]["kind"] == "stream")


def abort(client: Client) -> None:
    """Drop the TCP connection without a close handshake (RST), as a crashed client would."""
    stream = client.conn.protocol.stream
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.close()  # through tornado, so its loop forgets the fd before it is reused


async def start_and_drop(server, session_id: str, after: int) -> tuple[str, list[dict]]:
    """Start STREAM, keep the first ``after`` updates, then kill the socket."""
    client = await Client.connect(server.url())
    eid = "r-" + uuid.uuid4().hex[:10]
    await client.send({"type": "execute_streaming", "code": STREAM, "session_id": session_id,
                       "execution_id": eid})
    got: list[dict] = []
    while len(got) < after:
        m = await client.wait_for(lambda m: m.get("execution_id") == eid and m["type"] == "execution_update")
        got.append(m)
    abort(client)
    return eid, got


async def resume(server, eid: str, after_seq: int) -> tuple[dict, list[dict], dict]:
    client = await Client.connect(server.url())
    await client.send({"type": "resume", "execution_id": eid, "after_seq": after_seq})
    ack = await client.wait_for(lambda m: m["type"] in ("resumed", "error"))
    assert ack["type"] == "resumed", ack
    updates = []
    while True:
        m = await client.wait_for(lambda m: m.get("execution_id") == eid and m["type"] != "keepalive")
        if m["type"] == "execution_result":
            client.close()
            return ack, updates, m
        assert m["type"] == "execution_update", m
        updates.append(m)


def assert_contiguous(first: list[dict], rest: list[dict]) -> None:
    seqs = [m["seq"] for m in first + rest]
    assert seqs == list(range(1, len(seqs) + 1)), seqs


@pytest.mark.gen_test(timeout=90)
async def test_uninterrupted_run_is_the_reference(server, session_id):
    client = await Client.connect(server.url())
    events, result = await client.execute(STREAM, streaming=True, session_id=session_id)
    updates = [m for m in events if m["type"] == "execution_update"]
    assert text(updates) == EXPECTED
    assert result["status"] == "completed" and "".join(result["output"]) == EXPECTED.replace("\n", "")
    client.close()


@pytest.mark.gen_test(timeout=90)
async def test_resume_mid_stream_loses_and_repeats_nothing(server, session_id):
    eid, before = await start_and_drop(server, session_id, after=5)
    ack, after, result = await resume(server, eid, before[-1]["seq"])
    assert ack["status"] == "running" and ack["after_seq"] == before[-1]["seq"]
    assert ack["session_id"] == session_id
    assert after, "the execution should still have been running"
    assert_contiguous(before, after)
    assert text(before) + text(after) == EXPECTED  # byte for byte, as an uninterrupted run
    assert result["status"] == "completed"
    assert result["outputs"] == [{"output_type": "stream", "name": "stdout", "text": EXPECTED}]


@pytest.mark.gen_test(timeout=90)
async def test_resume_after_it_finished_while_away(server, session_id):
    eid, before = await start_and_drop(server, session_id, after=2)
    watcher = await Client.connect(server.url())
    for _ in range(200):  # wait for the end without following it
        await watcher.send({"type": "get_result", "execution_id": eid})
        snap = await watcher.wait_for(lambda m: m.get("execution_id") == eid)
        if snap["status"] != "running":
            break
        await asyncio.sleep(0.1)
    assert snap["status"] == "completed"
    ack, after, result = await resume(server, eid, before[-1]["seq"])
    assert ack["status"] == "completed"
    assert_contiguous(before, after)
    assert text(before) + text(after) == EXPECTED
    assert result == snap
    watcher.close()


@pytest.mark.gen_test(timeout=90)
async def test_updates_from_the_store_are_the_very_messages_sent_live(server, session_id):
    client = await Client.connect(server.url())
    events, result = await client.execute("for i in range(5): print(i, flush=True)\n'done'",
                                          streaming=True, session_id=session_id)
    live = [m for m in events if m["type"] == "execution_update"]
    eid = result["execution_id"]
    hub = server.server.service.hub
    for _ in range(100):  # once the result is written, the in-memory log is dropped
        if eid not in hub.feeds:
            break
        await asyncio.sleep(0.05)
    assert eid not in hub.feeds
    _, replayed, again = await resume(server, eid, 0)
    assert replayed == live  # same seq, same update, same timestamp
    assert again == result
    _, tail, _ = await resume(server, eid, live[-2]["seq"])
    assert tail == live[-1:]
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_resume_errors(server):
    client = await Client.connect(server.url())
    await client.send({"type": "resume", "execution_id": "no-such-execution"})
    err = await client.next()
    assert err["type"] == "error" and err["code"] == "execution_not_found"
    assert err["execution_id"] == "no-such-execution"
    for bad, field in (({"execution_id": "x", "after_seq": -1}, "after_seq"),
                       ({"execution_id": "x", "after_seq": "two"}, "after_seq"),
                       ({}, "execution_id")):
        await client.send({"type": "resume", **bad})
        err = await client.next()
        assert err["code"] == "validation_error" and err["field"] == field, err
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_keepalive_while_quiet(server, session_id):
    client = await Client.connect(server.url())
    events, result = await client.execute("import time; time.sleep(2.5)", streaming=True,
                                          session_id=session_id)
    keepalives = [m for m in events if m["type"] == "keepalive"]
    assert result["status"] == "completed"
    assert len(keepalives) >= 2, [m["type"] for m in events]
    assert all(k["execution_id"] == result["execution_id"] and "timestamp" in k for k in keepalives)
    client.close()


@pytest.mark.gen_test(timeout=90)
async def test_default_session_work_ends_with_its_connection(server):
    client = await Client.connect(server.url())
    prefix = f"conn-{client.welcome['connection_id']}"
    eid = "d-" + uuid.uuid4().hex[:10]
    await client.send({"type": "execute_streaming", "execution_id": eid,
                       "code": "import time\nfor i in range(600):\n    print(i, flush=True)\n    time.sleep(0.1)"})
    await client.wait_for(lambda m: m.get("type") == "execution_update")
    assert any(s.startswith(prefix) for s in server.sessions())
    abort(client)
    for _ in range(100):
        if not any(s.startswith(prefix) for s in server.sessions()):
            break
        await asyncio.sleep(0.1)
    assert not any(s.startswith(prefix) for s in server.sessions())
    other = await Client.connect(server.url())
    await other.send({"type": "get_result", "execution_id": eid})
    result = await other.next()
    assert result["type"] == "execution_result" and result["status"] == "failed"
    assert result["error"]["ename"] == "SessionShutdown"
    other.close()


@pytest.mark.gen_test(timeout=30)
async def test_websocket_ping_drops_a_dead_peer():
    srv = ThreadedServer(ws_ping_interval=0.5).start()  # no kernel is started here
    try:
        raw = RawSocket(srv.port)
        assert raw.read_json()["type"] == "welcome"
        http = AsyncHTTPClient()
        url = f"http://127.0.0.1:{srv.port}/api/health?token={TOKEN}"  # counts need the token
        counts = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            import json

            counts.append(json.loads((await http.fetch(url)).body)["connections"])
            if counts[-1] == 0:
                break
            await asyncio.sleep(0.2)
        assert counts[0] == 1 and counts[-1] == 0, counts  # never answered a ping: dropped
        raw.close()
    finally:
        srv.stop()
