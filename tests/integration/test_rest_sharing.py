"""Shared sessions over REST against real kernels: GET /api/events (the broadcast as ndjson, with
keepalives and the slow-consumer rule) and GET /api/executions/{id}/events (resume as ndjson)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from typing import Any

import pytest

from .harness import TOKEN, ThreadedServer, module_server
from .test_rest import AUTH, error_of, fetch

QUEUE = 16
KEEPALIVE = 0.5
GRACE = 6.0  # ws_ping_interval: how long a dropped ndjson subscriber has to read what was queued
BIG = ("from IPython.display import clear_output\n"  # ~12 MB: more than the socket buffers hold
       "for i in range(300):\n"
       "    print(str(i % 10) * 40000, flush=True)\n"
       "    clear_output()\n"
       "print('end')")


server = module_server(keepalive_interval=KEEPALIVE, send_queue_size=QUEUE, ws_ping_interval=GRACE,
                       max_output_size=64 * 1024 * 1024)


@pytest.fixture(scope="module")
def shared():
    return "rsh-" + uuid.uuid4().hex[:8]


class Stream:
    """A streaming GET over a raw socket, so a test can read line by line, stop reading, or leave."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        self.reader, self.writer, self.head = reader, writer, head
        self.pending = b""
        self.ended = False

    @classmethod
    async def open(cls, server: ThreadedServer, path: str, *, rcvbuf: int | None = None) -> Stream:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect, so the advertised window stays small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        return cls(reader, writer, head)

    async def line(self, timeout: float = 30) -> dict[str, Any]:
        while b"\n" not in self.pending:
            head = await asyncio.wait_for(self.reader.readline(), timeout)
            if not head:
                raise ConnectionError("closed before the end of the stream")
            size = int(head.strip(), 16)
            if size == 0:
                self.ended = True
                raise EOFError("the stream ended")
            self.pending += (await asyncio.wait_for(self.reader.readexactly(size + 2), timeout))[:-2]
        line, _, self.pending = self.pending.partition(b"\n")
        return json.loads(line)

    async def until(self, predicate: Any, timeout: float = 30) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            event = await self.line(max(0.1, deadline - time.monotonic()))
            if predicate(event):
                return event, seen
            seen.append(event)

    def close(self) -> None:
        self.writer.close()


def subscriptions(server: ThreadedServer) -> int:
    async def size() -> int:
        return len(server.server.service.hub.bus)
    return server.call(size())


async def eventually(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


# -- GET /api/events ----------------------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_events_needs_topics_and_a_token(server):
    for query in ("", "?topics=", "?topics=,%20,"):
        code, body, _ = await fetch(server, "/api/events" + query)
        assert code == 400, query
        assert error_of(body)["code"] == "validation_error" and body["error"]["field"] == "topics"
    code, body, _ = await fetch(server, "/api/events?topics=a.*", headers={})
    assert code == 401 and error_of(body)["code"] == "unauthorized"
    code, body, response = await fetch(server, "/api/events?topics=a.*", "POST", b"")
    assert code == 405 and response.headers["Allow"] == "GET"


@pytest.mark.gen_test(timeout=90)
async def test_events_stream_broadcasts_with_keepalives_until_the_client_leaves(server, shared):
    before = subscriptions(server)
    stream = await Stream.open(server, f"/api/events?topics=code_execution.*,session.{shared}.*"
                                       "&topics=code_execution.completed")
    assert stream.head.startswith(b"HTTP/1.1 200") and b"application/x-ndjson" in stream.head
    first = await stream.line()
    assert first["type"] == "subscribed"
    assert first["topics"] == ["code_execution.*", "code_execution.completed", f"session.{shared}.*"]
    t0 = time.monotonic()
    keepalive = await stream.line(10)  # nothing happens: a keepalive after the quiet interval
    assert keepalive["type"] == "keepalive" and set(keepalive) == {"type", "timestamp"}
    assert time.monotonic() - t0 >= KEEPALIVE * 0.8

    eid = "rsh-ev-" + uuid.uuid4().hex[:8]
    code, result, _ = await fetch(server, "/api/execute", "POST",
                                  {"code": "print('hi')\n6*7", "session_id": shared, "execution_id": eid})
    assert code == 200 and result["output"] == ["hi", "42"]
    done, seen = await stream.until(lambda e: e.get("type") == "code_execution_completed")
    assert done["execution_id"] == eid and done["result"] == result
    mine = [e for e in seen if e.get("execution_id") == eid]
    assert [e["type"] for e in mine] == ["code_execution_started", "code_execution_update", "code_execution_update"]
    assert mine[1]["seq"] == 1 and mine[1]["update"]["text"] == "hi\n"
    assert any(e["type"] == "session_started" and e["session_id"] == shared for e in seen)
    assert [e["status"] for e in seen if e["type"] == "kernel_status"][-2:] == ["busy", "idle"]
    assert subscriptions(server) == before + 1
    stream.close()  # leaving ends the subscription
    await eventually(lambda: subscriptions(server) == before)


@pytest.mark.gen_test(timeout=120)
async def test_a_stream_that_is_not_read_gets_an_error_line_and_ends(server, shared):
    await fetch(server, "/api/execute", "POST", {"code": "1", "session_id": shared})
    before = subscriptions(server)
    stuck = await Stream.open(server, "/api/events?topics=code_execution.*", rcvbuf=4096)
    assert (await stuck.line())["type"] == "subscribed"
    # From here on `stuck` reads nothing while ~12 MB of broadcast is meant for it.
    t0 = time.monotonic()
    status, result, _ = await fetch(server, "/api/execute", "POST", {"code": BIG, "session_id": shared})
    crowded = time.monotonic() - t0
    assert status == 200 and result["status"] == "completed" and result["output"] == ["end"]
    assert subscriptions(server) == before, "the stuck stream must be unsubscribed"
    t0 = time.monotonic()
    _, quick, _ = await fetch(server, "/api/execute", "POST", {"code": "'quick'", "session_id": shared})
    assert quick["output"] == ["'quick'"] and time.monotonic() - t0 < 5

    error, before_error = await stuck.until(lambda e: e["type"] == "error", timeout=30)
    assert error["code"] == "slow_consumer" and error["topics"] == ["code_execution.*"]
    assert all(e["type"].startswith("code_execution_") or e["type"] == "keepalive" for e in before_error)
    assert len(before_error) < 600
    print(f"with a stuck ndjson subscriber {crowded:.2f}s, {len(before_error)} lines before the drop")
    with pytest.raises(EOFError):
        await stuck.line(10)  # and the response ends
    stuck.close()


@pytest.mark.gen_test(timeout=120)
async def test_a_dropped_stream_still_not_read_is_cut_off(server, shared):
    stuck = await Stream.open(server, "/api/events?topics=code_execution.*", rcvbuf=4096)
    assert (await stuck.line())["type"] == "subscribed"
    status, result, _ = await fetch(server, "/api/execute", "POST", {"code": BIG, "session_id": shared})
    assert status == 200 and result["output"] == ["end"]
    await asyncio.sleep(GRACE + 1)  # the backlog was not read within the grace
    lines = 0
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):  # in flight, then closed
        while True:
            await stuck.line(10)
            lines += 1
    assert lines < 600
    stuck.close()


# -- GET /api/executions/{id}/events --------------------------------------------------------------
async def ndjson(server: ThreadedServer, path: str) -> tuple[int, list[dict[str, Any]], Any]:
    code, body, response = await fetch(server, path)
    if body is not None:  # a JSON error, not a stream
        return code, [body], response
    return code, [json.loads(line) for line in response.body.decode().splitlines()], response


@pytest.mark.gen_test(timeout=90)
async def test_resume_a_running_then_a_finished_execution(server, shared):
    eid = "rsh-res-" + uuid.uuid4().hex[:8]
    code = "import time\nprint('a', flush=True)\ntime.sleep(1.5)\nprint('b', flush=True)\n'c'"
    running = asyncio.ensure_future(fetch(server, "/api/execute", "POST",
                                          {"code": code, "session_id": shared, "execution_id": eid}))

    async def printed() -> bool:
        _, body, _ = await fetch(server, f"/api/executions/{eid}")
        return body.get("output") == ["a"]
    deadline = time.monotonic() + 30
    while not await printed():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)

    status, lines, response = await ndjson(server, f"/api/executions/{eid}/events?after_seq=0")
    assert status == 200 and response.headers["Content-Type"] == "application/x-ndjson"
    assert lines[0]["type"] == "resumed" and lines[0]["status"] == "running" and lines[0]["after_seq"] == 0
    assert lines[-1]["type"] == "execution_result" and lines[-1]["output"] == ["a", "b", "'c'"]
    assert "keepalive" in [e["type"] for e in lines]  # the 1.5 s of quiet
    updates = [e for e in lines if e["type"] == "execution_update"]
    assert [u["seq"] for u in updates] == [1, 2, 3]
    _, final, _ = await running
    assert lines[-1] == final

    status, again, _ = await ndjson(server, f"/api/executions/{eid}/events?after_seq=1")
    assert status == 200
    assert again[0]["type"] == "resumed" and again[0]["status"] == "completed" and again[0]["after_seq"] == 1
    assert again[1:] == [u for u in updates if u["seq"] > 1] + [final]  # the very same messages
    status, everything, _ = await ndjson(server, f"/api/executions/{eid}/events")
    assert [e for e in everything if e["type"] == "execution_update"] == updates


@pytest.mark.gen_test(timeout=60)
async def test_resume_errors_are_plain_http_errors(server):
    status, [body], response = await ndjson(server, f"/api/executions/never-{uuid.uuid4().hex}/events")
    assert status == 404 and error_of(body)["code"] == "execution_not_found"
    assert response.headers["Content-Type"].startswith("application/json")
    for bad in ("-1", "x", "1.5"):
        status, [body], _ = await ndjson(server, f"/api/executions/whatever/events?after_seq={bad}")
        assert status == 400 and error_of(body)["field"] == "after_seq", bad
    code, body, _ = await fetch(server, "/api/executions/whatever/events", headers=dict(AUTH, Authorization="Bearer no"))
    assert code == 403
