"""Limits that keep one client from bloating or freezing the server (issue 10, items 5-7):
a client's outbox in bytes, a session's queue, the sessions one client and all of them hold.
Each attack runs beside an innocent client that must keep getting quick answers."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import struct
import time
import uuid
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..security.helpers import innocent_check
from .harness import TOKEN, Client, ThreadedServer, module_server
from .rawws import RawSocket

MiB = 1 << 20
server = module_server(max_outbox_bytes=16 * MiB, max_queued=6, max_queued_bytes=16 * MiB,
                       max_message_size=8 * MiB, max_sessions_per_connection=2)


def rss() -> int:
    """This process's resident memory (the server runs in it, on its own thread)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))


async def settled_rss() -> int:
    """After freeing garbage (the test's own parsed answers too: they share the process)."""
    gc.collect()
    ctypes.CDLL(None).malloc_trim(0)
    await asyncio.sleep(0.2)
    return rss()


async def innocent(client: Client, session: str) -> None:
    """The bystander: a ping answered within 1 s, and its counter moved on within 5 s."""
    started = time.monotonic()
    await client.send({"type": "ping"})
    await client.wait_for(lambda m: m["type"] == "pong", 5)
    assert time.monotonic() - started < 1.0, "ping took too long"
    await innocent_check(client, session)


def close_code(raw: RawSocket, timeout: float = 60) -> int:
    """Read (and drop) frames until the server's close frame; its status code."""
    raw.sock.settimeout(timeout)
    while True:
        opcode, payload = raw.frame()
        if opcode == 0x8:
            return struct.unpack("!H", payload[:2])[0]


BIG = "import sys\nfor i in range(200000): sys.stdout.write('x' * 99 + '\\n')"  # 20 MB, kept: 10 MiB


@pytest.mark.gen_test(timeout=180)
async def test_a_client_that_asks_without_reading_holds_a_bounded_outbox(server):
    """60 get_result of a ~21 MB result from a socket that never reads: the server holds one
    answer (not 60 copies), keeps serving others, and gives the memory back when it leaves."""
    bystander = await Client.connect(server.url())
    innocent_session = "lim-innocent-" + uuid.uuid4().hex[:6]
    await innocent(bystander, innocent_session)
    owner = await Client.connect(server.url())
    owner.conn.params.max_message_size = 1 << 30
    _, result = await owner.execute(BIG, session_id="lim-big", execution_id="lim-big-1", timeout=120)
    assert result["status"] == "completed" and result["truncated"]
    owner.close()
    before = await settled_rss()

    raw = RawSocket(server.port, rcvbuf=4096)
    raw.read_json()  # welcome
    for i in range(60):
        raw.send_json({"type": "get_result", "execution_id": "lim-big-1", "request_id": i})
    for _ in range(6):
        await innocent(bystander, innocent_session)
        await asyncio.sleep(0.3)
    grown = rss() - before
    # Today's code queued a fresh encoding per request: +1.2 GB.
    assert grown < 160 * MiB, f"server grew by {grown / MiB:.0f} MiB"

    # The answers that do come are whole, in order, with their request_id.
    for i in range(2):
        answer = await asyncio.to_thread(raw.read_json, 60)
        assert answer["type"] == "execution_result" and answer["request_id"] == i
        assert answer["execution_id"] == "lim-big-1" and answer["outputs"] == result["outputs"]
    raw.close()
    for _ in range(50):  # the server notices, frees the outbox and trims the heap
        if await settled_rss() - before < 128 * MiB:  # today: +1.1 GB kept
            break
    assert rss() - before < 128 * MiB, f"{(rss() - before) / MiB:.0f} MiB not given back"
    await innocent(bystander, innocent_session)
    bystander.close()


@pytest.mark.gen_test(timeout=180)
async def test_a_client_over_its_outbox_budget_is_disconnected_with_1008(server):
    """A client that streams 2 x 20 MB of output and never reads: past max_outbox_bytes the
    connection is closed with 1008 and its queue freed; the execution (in a named session)
    runs on, its result readable by anyone."""
    bystander = await Client.connect(server.url())
    bystander.conn.params.max_message_size = 1 << 30
    innocent_session = "lim-innocent-" + uuid.uuid4().hex[:6]
    await innocent(bystander, innocent_session)
    raw = RawSocket(server.port, rcvbuf=4096)
    raw.read_json()
    for i in (1, 2):  # ~60 MB of events, against a budget of 16 MiB
        raw.send_json({"type": "execute_streaming", "code": BIG, "session_id": "lim-stream",
                       "execution_id": f"lim-stream-{i}"})
    code = asyncio.ensure_future(asyncio.to_thread(close_code, raw, 120))
    await asyncio.sleep(0.5)
    await innocent(bystander, innocent_session)
    assert await code == 1008  # today: never closed, every update queued
    raw.close()
    answer = await bystander.ask({"type": "get_result", "execution_id": "lim-stream-1"}, 120)
    for _ in range(100):
        if answer["status"] != "running":
            break
        await asyncio.sleep(0.5)
        answer = await bystander.ask({"type": "get_result", "execution_id": "lim-stream-1"}, 120)
    assert answer["status"] == "completed" and answer["truncated"]
    await innocent(bystander, innocent_session)
    bystander.close()


def big_code(n: int) -> str:
    return "#" + "x" * (n - 4) + "\n1"


@pytest.mark.gen_test(timeout=180)
async def test_a_session_queue_is_bounded_in_bytes_and_count(server):
    """Executions of 5 MiB queued behind a long sleep: past max_queued_bytes (then past
    max_queued) they are refused with queue_full, naming the execution and the limit."""
    bystander = await Client.connect(server.url())
    innocent_session = "lim-innocent-" + uuid.uuid4().hex[:6]
    attacker = await Client.connect(server.url())
    session = "lim-queue-" + uuid.uuid4().hex[:6]
    await attacker.send({"type": "execute_streaming", "code": "import time; time.sleep(60)",
                         "session_id": session, "execution_id": f"{session}-sleep"})
    await attacker.wait_for(lambda m: m["type"] == "execution_started", 60)
    before = await settled_rss()
    code = big_code(5 * MiB)
    for i in range(12):
        await attacker.send({"type": "execute", "code": code, "session_id": session,
                             "execution_id": f"{session}-big-{i}"})
    refused = []
    for _ in range(9):  # 3 x 5 MiB fit in 16 MiB
        error = await attacker.wait_for(lambda m: m["type"] == "error", 60)
        refused.append(error)
    assert {e["code"] for e in refused} == {"queue_full"}
    assert {e["limit"] for e in refused} == {"max_queued_bytes"}
    assert all(e["session_id"] == session and e["execution_id"].startswith(f"{session}-big-") for e in refused)
    await innocent(bystander, innocent_session)
    assert rss() - before < 120 * MiB
    for i in range(4):  # small ones: the count limit (6 held, the sleep and 3 big ones among them)
        await attacker.send({"type": "execute", "code": "1", "session_id": session,
                             "execution_id": f"{session}-small-{i}"})
    error = await attacker.wait_for(lambda m: m["type"] == "error", 60)
    assert error["code"] == "queue_full" and error["limit"] == "max_queued"
    described = server.sessions()[session]
    assert described["queued"] == 6
    await innocent(bystander, innocent_session)
    reply = await attacker.ask({"type": "shutdown_session", "session_id": session})
    assert reply["type"] == "shutdown_session_reply"
    attacker.close()
    bystander.close()


async def rest(server, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    request = HTTPRequest(f"http://127.0.0.1:{server.port}{path}", method=method,
                          headers={"Authorization": f"Bearer {TOKEN}"},
                          body=None if body is None else json.dumps(body), request_timeout=120)
    try:
        response = await AsyncHTTPClient().fetch(request)
    except HTTPClientError as exc:
        return exc.code, json.loads(exc.response.body)
    return response.code, json.loads(response.body)


@pytest.mark.gen_test(timeout=180)
async def test_rest_sessions_count_against_the_client_like_websocket_ones(server):
    """REST used to ignore max_sessions_per_connection: its sessions belonged to nobody."""
    bystander = await Client.connect(server.url())
    innocent_session = "lim-innocent-" + uuid.uuid4().hex[:6]
    made = []
    try:
        for _ in range(2):
            status, body = await rest(server, "POST", "/api/sessions", {"language": "python"})
            assert status == 201, body
            made.append(body["session_id"])
        status, body = await rest(server, "POST", "/api/sessions", {"language": "python"})
        assert status == 503, body
        assert body["error"]["code"] == "capacity" and body["error"]["limit"] == "max_sessions_per_connection"
        # A temporary session of POST /api/execute is the same client's too.
        status, body = await rest(server, "POST", "/api/execute", {"code": "1+1"})
        assert status == 503 and body["error"]["limit"] == "max_sessions_per_connection"
        await innocent(bystander, innocent_session)
    finally:
        for session_id in made:
            await rest(server, "DELETE", f"/api/sessions/{session_id}")
    status, body = await rest(server, "POST", "/api/execute", {"code": "1+1"})
    assert status == 200 and body["result"] == {"text/plain": "2"}
    bystander.close()


@pytest.mark.gen_test(timeout=180)
async def test_the_sum_of_session_memory_limits_is_capped():
    """Two sessions of 512 MiB fill a 1300 MiB cap; a third is refused naming the limit, and
    one asking for less (config.limits.memory) still fits: each session counts its own."""
    capped = ThreadedServer(memory_limit=512 * MiB, max_total_memory=1300 * MiB).start()
    try:
        client = await Client.connect(capped.url())
        innocent_session = "mem-innocent"
        await innocent(client, innocent_session)  # 512 MiB
        first = await client.rpc("session.create", {"session_id": "mem-a"})
        assert "result" in first, first  # 1024 MiB
        refused = await client.rpc("session.create", {"session_id": "mem-b"})
        assert refused["error"]["code"] == -32005, refused
        assert refused["error"]["data"]["code"] == "capacity"
        assert refused["error"]["data"]["limit"] == "max_total_memory"
        assert "max-total-memory" in refused["error"]["data"]["message"]
        small = await client.rpc("session.create", {"session_id": "mem-c",
                                                    "config": {"limits": {"memory": 256 * MiB}}})
        assert "result" in small, small
        await innocent(client, innocent_session)
        client.close()
    finally:
        capped.stop()
