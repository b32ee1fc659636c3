"""Shared benchmark plumbing: a subprocess server, a WebSocket client, a bare kernel, tables."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import IO, Any

from jupyter_client.manager import AsyncKernelManager
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from icpy_kernels.runtime.kernels import kernel_environment
from icpy_kernels.runtime.kernelspecs import kernel_spec_manager

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TOKEN = "bench-token-0123456789"
# A reply of near max_output_size carries the output twice (``output`` lines and
# ``outputs`` text), so the client must accept frames well above the server's 10 MiB.
CLIENT_MAX_FRAME = 1 << 30

# Kernels of this run keep their connection files out of the user's runtime dir.
if "JUPYTER_RUNTIME_DIR" not in os.environ:
    os.environ["JUPYTER_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="icpy-bench-runtime-")
    atexit.register(shutil.rmtree, os.environ["JUPYTER_RUNTIME_DIR"], ignore_errors=True)


# -- the server, as a separate process (the honest setup: its CPU is not ours) ------------
# Experiments only (the server has no such settings): code run before the CLI in the server process.
PATCHES = {
    "ipc": "import functools, jupyter_client.manager as m, icpy_kernels.runtime.kernels as k\n"
           "k.AsyncKernelManager = functools.partial(m.AsyncKernelManager, transport='ipc')\n",
    "server-nagle": "import tornado.websocket as w\nw.WebSocketHandler.set_nodelay = lambda self, value: None\n",
}
_LAUNCHER = "import sys\n{patches}from icpy_kernels.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def _server_log() -> IO[bytes]:
    """The server's (and its kernels') stderr, kept out of the tables."""
    return open(RESULTS / "server.log", "ab")


@contextlib.asynccontextmanager
async def server_process(*flags: str, patches: tuple[str, ...] = (), profile: str | None = None,
                         env: dict[str, str] | None = None) -> AsyncIterator[str]:
    """``icpy serve --port 0`` in a subprocess; yields its ws:// URL; SIGTERM (kernels shut down) on exit.

    ``patches`` names PATCHES applied before the CLI runs ("ipc": ZMQ ipc to the kernels;
    "server-nagle": the socket keeps Nagle on). ``profile`` writes a cProfile dump. ``env``
    is added to the server's environment (e.g. a JUPYTER_PATH holding private kernelspecs).
    """
    if patches:
        code = _LAUNCHER.format(patches="".join(PATCHES[p] for p in patches))
        argv = [sys.executable, "-c", code]
    elif profile:
        argv = [sys.executable, "-m", "cProfile", "-o", profile, "-m", "icpy_kernels"]
    else:
        argv = [sys.executable, "-m", "icpy_kernels"]
    argv += ["serve", "--port", "0", "--token", TOKEN, "--host", "127.0.0.1", *flags]
    RESULTS.mkdir(parents=True, exist_ok=True)
    with _server_log() as log:
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=log, cwd=ROOT,
                                                    env={**os.environ, **(env or {})})
    drain: asyncio.Task[bytes] | None = None
    try:
        assert proc.stdout is not None
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
            if not line:
                raise RuntimeError(f"server exited: {await proc.wait()}")
            match = re.search(r"(ws://\S+)", line)
            if match:
                break
        drain = asyncio.create_task(proc.stdout.read())
        yield match.group(1)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if drain is not None:
            drain.cancel()


class Bridge:
    """A lean WebSocket client: send one execute, read frames until its result."""

    def __init__(self, conn: WebSocketClientConnection) -> None:
        self.conn = conn
        self.n = 0
        self.prefix = uuid.uuid4().hex[:12]  # ids are server-wide: a repeated one replays its result
        self.last_frame_bytes = 0  # size of the last result frame read

    @classmethod
    async def connect(cls, url: str, *, nodelay: bool | None = None) -> Bridge:
        conn = await websocket_connect(HTTPRequest(url), max_message_size=CLIENT_MAX_FRAME)
        if nodelay is not None:
            conn.protocol.stream.set_nodelay(nodelay)
        bridge = cls(conn)
        welcome = json.loads(await conn.read_message())
        assert welcome["type"] == "welcome", welcome
        return bridge

    def nodelay(self) -> bool:
        sock = self.conn.protocol.stream.socket
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    async def execute(
        self, code: str, *, streaming: bool = False, on_event: Callable[[dict[str, Any]], None] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Run ``code``; every frame of this execution goes to ``on_event``; returns the result."""
        self.n += 1
        execution_id = f"{self.prefix}-{self.n}"
        await self.conn.write_message(json.dumps({
            "type": "execute_streaming" if streaming else "execute", "code": code,
            "execution_id": execution_id, **fields}))
        while True:
            raw = await self.conn.read_message()
            if raw is None:
                raise ConnectionError("server closed the connection")
            event = json.loads(raw)
            if event.get("type") == "error":
                raise RuntimeError(f"server error: {event}")
            if on_event is not None:
                on_event(event)
            if event.get("type") == "execution_result" and event.get("execution_id") == execution_id:
                self.last_frame_bytes = len(raw)
                return event

    def close(self) -> None:
        self.conn.close()


class BareKernel:
    """An ipykernel (or any spec) driven directly by jupyter_client: the baseline."""

    def __init__(self, kernel_name: str = "python3", transport: str = "tcp", extra_dirs: tuple[str, ...] = (),
                 client_factory: type | None = None) -> None:
        ksm = kernel_spec_manager()
        ksm.kernel_dirs = [*extra_dirs, *ksm.kernel_dirs]
        # client_factory: jupyter_client's seam for the client class (None: its AsyncKernelClient).
        factory = {"client_factory": client_factory} if client_factory is not None else {}
        self.km = AsyncKernelManager(kernel_name=kernel_name, kernel_spec_manager=ksm, transport=transport,
                                     **factory)
        self.kc: Any = None

    async def start(self) -> BareKernel:
        await self.km.start_kernel(env=kernel_environment(), stderr=subprocess.DEVNULL)
        self.kc = self.km.client()
        self.kc.start_channels()
        await self.kc.wait_for_ready(timeout=60)
        return self

    async def execute(self, code: str, on_stream: Callable[[str, str], None] | None = None,
                      timeout: float = 600, on_msg: Callable[[dict[str, Any]], None] | None = None,
                      ) -> dict[str, Any]:
        """execute, read IOPub until our ``idle``, then the reply (jupyter_client's recipe).

        ``on_msg`` sees every IOPub message of this execution (e.g. to read ``execute_result``).
        """
        msg_id = self.kc.execute(code)
        while True:
            msg = await self.kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if on_msg is not None:
                on_msg(msg)
            kind = msg["header"]["msg_type"]
            if kind == "stream" and on_stream is not None:
                on_stream(msg["content"]["name"], msg["content"]["text"])
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                break
        while True:
            reply = await self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"]

    async def stop(self) -> None:
        if self.kc is not None:
            self.kc.stop_channels()
        if self.km.has_kernel:
            await self.km.shutdown_kernel(now=False)


def make_bare(transport: str) -> Callable[[], BareKernel]:
    return partial(BareKernel, "python3", transport)


# -- figures ----------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary_ms(samples: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {"n": len(ms), "median": statistics.median(ms), "p90": percentile(ms, 0.9),
            "p99": percentile(ms, 0.99), "min": min(ms), "mean": statistics.fmean(ms)}


def table(headers: list[str], rows: list[list[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
        return str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    return "\n".join(out)


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in load],
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2))
    return path
