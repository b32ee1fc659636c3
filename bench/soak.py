"""Soak: the attacks of issue 10 at once, for a bounded time, against a server on 127.0.0.1,
with an innocent client alongside measuring ping and ``1+1``; reports the worst latencies and
the server's RSS before, during and after.

Each attack is a small function: one whose fix lives on another branch still runs, and the
figures say what it cost. Run by hand (not a test): ``.venv/bin/python bench/soak.py [--seconds 30]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchlib import TOKEN, machine, save, server_process, table
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

HOST = "127.0.0.1"  # never anything else


def server_pid(port: int) -> int | None:
    """Our child listening on ``port`` (the server), found through /proc."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":
            inode = fields[9]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and inode:
            with contextlib.suppress(OSError):
                if any(os.readlink(fd) == f"socket:[{inode}]" for fd in (entry / "fd").iterdir()):
                    return int(entry.name)
    return None


def rss_mb(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def connect(url: str) -> WebSocketClientConnection:
    conn = await websocket_connect(HTTPRequest(url), max_message_size=1 << 28)
    await conn.read_message()  # welcome
    return conn


async def drain(conn: WebSocketClientConnection) -> None:
    while await conn.read_message() is not None:
        pass


# -- the attacks: each runs until ``stop`` is set -------------------------------------------------
async def slow_headers(url: str, port: int, stop: asyncio.Event, count: int = 200) -> None:
    """Connections that never finish their headers, reopened as the server closes them."""
    socks: list[socket.socket] = []
    try:
        while not stop.is_set():
            socks = [s for s in socks if _open(s)]
            while len(socks) < count:
                with contextlib.suppress(OSError):
                    sock = socket.create_connection((HOST, port), timeout=2)
                    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                    sock.setblocking(False)
                    socks.append(sock)
            await asyncio.sleep(0.5)
    finally:
        for sock in socks:
            sock.close()


def _open(sock: socket.socket) -> bool:
    try:
        if sock.recv(1, socket.MSG_PEEK) == b"":
            sock.close()
            return False
    except BlockingIOError:
        return True
    except OSError:
        sock.close()
        return False
    return True


async def never_reading(url: str, port: int, stop: asyncio.Event) -> None:
    """A WebSocket client that subscribes to everything, asks for a lot of output and never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((HOST, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /ws?token={TOKEN} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    for message in ({"type": "subscribe", "topics": ["*"]},
                    {"type": "execute_streaming", "session_id": "soak-flood",
                     "code": "for i in range(200000): print(i)"}):
        payload, mask = json.dumps(message).encode(), os.urandom(4)
        header = bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big") if len(payload) > 125 \
            else bytes([0x81, 0x80 | len(payload)])
        sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    try:
        await stop.wait()
    finally:
        sock.close()


async def _frames(url: str, stop: asyncio.Event, make: Callable[[int], str], pause: float) -> None:
    conn = await connect(url)
    reader = asyncio.ensure_future(drain(conn))
    try:
        n = 0
        while not stop.is_set() and not reader.done():
            await conn.write_message(make(n))
            n += 1
            await asyncio.sleep(pause)
    finally:
        conn.close()
        reader.cancel()


async def nested_json(url: str, port: int, stop: asyncio.Event) -> None:
    depth = 200_000
    await _frames(url, stop, lambda n: "[" * depth + "]" * depth, 0.5)


async def oversized_batch(url: str, port: int, stop: asyncio.Event) -> None:
    batch = [{"jsonrpc": "2.0", "id": i, "method": "languages.list"} for i in range(20_000)]
    await _frames(url, stop, lambda n: json.dumps(batch), 1.0)


async def many_patterns(url: str, port: int, stop: asyncio.Event) -> None:
    topics = [f"soak.{i}.*.[a-z]*" for i in range(20_000)]
    await _frames(url, stop, lambda n: json.dumps({"type": "subscribe", "topics": topics}), 1.0)


async def queued_executes(url: str, port: int, stop: asyncio.Event) -> None:
    await _frames(url, stop, lambda n: json.dumps({"type": "execute", "code": "1", "session_id": "soak-queue",
                                                   "execution_id": f"soak-q-{uuid.uuid4().hex}"}), 0.002)


async def long_working_directory(url: str, port: int, stop: asyncio.Event) -> None:
    path = "a/" * 200_000
    await _frames(url, stop, lambda n: json.dumps({"type": "execute", "code": "1", "session_id": "soak-wd",
                                                   "config": {"working_directory": path}}), 0.5)


ATTACKS: dict[str, Callable[[str, int, asyncio.Event], Awaitable[None]]] = {
    "slow_headers": slow_headers, "never_reading": never_reading, "nested_json": nested_json,
    "oversized_batch": oversized_batch, "many_patterns": many_patterns,
    "queued_executes": queued_executes, "long_working_directory": long_working_directory,
}


# -- the innocent client ------------------------------------------------------------------------
async def innocent(url: str, stop: asyncio.Event, samples: dict[str, list[float]]) -> None:
    conn = await connect(url)
    n = 0
    while not stop.is_set():
        started = time.monotonic()
        await conn.write_message(json.dumps({"type": "ping"}))
        while json.loads(await asyncio.wait_for(conn.read_message(), 120))["type"] != "pong":
            pass
        samples["ping"].append(time.monotonic() - started)
        n += 1
        eid, started = f"soak-innocent-{uuid.uuid4().hex}-{n}", time.monotonic()
        await conn.write_message(json.dumps({"type": "execute", "code": "1+1", "session_id": "soak-innocent",
                                             "execution_id": eid}))
        while True:
            message = json.loads(await asyncio.wait_for(conn.read_message(), 120))
            if message.get("execution_id") == eid and message["type"] in ("execution_result", "error"):
                break
        samples["1+1"].append(time.monotonic() - started)
        await asyncio.sleep(0.2)
    conn.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with server_process("--header-timeout", "5") as base:
        url = f"{base}?token={TOKEN}"
        port = int(base.split(":")[2].split("/")[0])
        pid = server_pid(port)
        warm: dict[str, list[float]] = {"ping": [], "1+1": []}
        calm = asyncio.Event()
        quiet = asyncio.ensure_future(innocent(url, calm, warm))  # starts its kernel
        await asyncio.sleep(3)
        calm.set()
        await quiet
        before = rss_mb(pid)
        stop, samples = asyncio.Event(), {"ping": [], "1+1": []}
        names = [n for n in ATTACKS if n in args.attacks]
        tasks = [asyncio.ensure_future(ATTACKS[n](url, port, stop)) for n in names]
        watcher = asyncio.ensure_future(innocent(url, stop, samples))
        peak, deadline = before, time.monotonic() + args.seconds
        while time.monotonic() < deadline and not watcher.done():
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(0.5)
        stop.set()
        outcomes = await asyncio.gather(watcher, *tasks, return_exceptions=True)
        await asyncio.sleep(5)  # the server drops what the attackers left; no gc hook from outside
        after = rss_mb(pid)
    errors = {name: repr(o) for name, o in zip(["innocent", *names], outcomes, strict=True)
              if isinstance(o, BaseException)}
    return {"seconds": args.seconds, "attacks": names, "innocent_rounds": len(samples["1+1"]),
            "worst_ping_ms": 1000 * max(samples["ping"], default=float("nan")),
            "worst_1+1_ms": 1000 * max(samples["1+1"], default=float("nan")),
            "calm_worst_1+1_ms": 1000 * max(warm["1+1"][1:], default=float("nan")),
            "rss_mb": {"before": before, "peak_during": peak, "after_5s": after}, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated subset")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    args.attacks = args.attacks.split(",")
    result = asyncio.run(asyncio.wait_for(run(args), args.seconds + 240))
    rss = result["rss_mb"]
    print(table(["attacks", "rounds", "worst ping ms", "worst 1+1 ms", "calm worst 1+1 ms",
                 "RSS before MB", "RSS peak MB", "RSS after MB"],
                [[",".join(result["attacks"]), result["innocent_rounds"], result["worst_ping_ms"],
                  result["worst_1+1_ms"], result["calm_worst_1+1_ms"], rss["before"], rss["peak_during"],
                  rss["after_5s"]]]))
    for name, error in result["errors"].items():
        print(f"{name}: {error}")
    if not args.no_save:
        save("soak", {"machine": machine(), **result})


if __name__ == "__main__":
    main()
