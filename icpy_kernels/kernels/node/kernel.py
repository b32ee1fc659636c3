"""Jupyter kernel for JavaScript that drives one long-lived Node.js process running driver.js."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
from ipykernel.kernelbase import Kernel

from icpy_kernels import __version__

from ..lifecycle import OrderlyShutdown

DRIVER = Path(__file__).with_name("driver.js")
MIN_NODE_MAJOR = 18
# Without this flag a sync loop terminated inside a timer callback aborts Node with
# "async hook stack has become corrupted"; with it, the process survives and carries on.
NODE_FLAGS = ["--no-force-async-hooks-checks"]
CELL_PARENTS_KEPT = 256


@dataclass
class _Pending:
    """A request sent to the driver whose reply ("done"/"reply" frame) is awaited."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[dict[str, Any]]
    kind: str
    parent: dict[str, Any] = field(default_factory=dict)
    silent: bool = False


def find_node() -> tuple[str | None, str, str | None]:
    """(path, version, error) for the `node` on PATH (or $ICPY_NODE)."""
    node = os.environ.get("ICPY_NODE") or shutil.which("node")
    if not node:
        return None, "", "Node.js was not found on PATH: install Node.js >= 18 to use this kernel."
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
        version = out.stdout.strip().lstrip("v")
        major = int(version.split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError) as err:
        return None, "", f"Could not run {node} --version: {err}"
    if major < MIN_NODE_MAJOR:
        return None, version, f"Node.js {version} at {node} is too old: this kernel needs >= 18."
    return node, version, None


class NodeKernel(OrderlyShutdown, Kernel):
    """Kernel whose cells run in a persistent Node.js REPL context."""

    implementation = "icpy-javascript"
    implementation_version = __version__
    language = "javascript"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._node_path, version, self._node_error = find_node()
        self.language_info = {
            "name": "javascript",
            "version": version,
            "mimetype": "application/javascript",
            "file_extension": ".js",
            "codemirror_mode": "javascript",
            "pygments_lexer": "javascript",
        }
        self.banner = f"JavaScript (Node.js {version}) kernel, icpy {__version__}"
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._send_lock = threading.Lock()
        self._stdin_lock = threading.Lock()
        self._stdin_cancel = threading.Event()
        self._out_parent: dict[str, Any] = {}
        # Recent cells' parents by request id: driver.js names the cell an asynchronous
        # error belongs to when that cell has already finished.
        self._cell_parents: dict[int, dict[str, Any]] = {}
        self._stdin_ident: list[bytes] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._cmd_w = self._int_w = -1
        if self._node_error:
            self.log.error("%s", self._node_error)
        else:
            self._spawn()

    # ---- the node process -------------------------------------------------------------

    def _spawn(self) -> None:
        """Start driver.js with three extra pipes: commands, events, interrupts."""
        assert self._node_path is not None
        cmd_r, self._cmd_w = os.pipe()
        ev_r, ev_w = os.pipe()
        int_r, self._int_w = os.pipe()
        env = dict(os.environ, ICPY_NODE_FDS=f"{cmd_r},{ev_w},{int_r}")
        # A session of its own keeps SIGINTs aimed at the kernel's process group (signal
        # interrupt mode, Ctrl-C in a terminal) away from node: interrupts go via the pipe.
        self._proc = subprocess.Popen(
            [self._node_path, *NODE_FLAGS, str(DRIVER)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(cmd_r, ev_w, int_r),
            env=env,
            start_new_session=True,
        )
        for fd in (cmd_r, ev_w, int_r):
            os.close(fd)
        proc = self._proc
        threading.Thread(target=self._read_events, args=(ev_r, proc), daemon=True).start()
        for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            threading.Thread(target=self._read_raw, args=(name, pipe), daemon=True).start()

    def _node_alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _stop_node(self) -> None:
        """Close the command pipe (the driver exits on EOF), then the interrupt pipe (its
        worker then kills the process even if the main thread is stuck), then SIGKILL."""
        proc, self._proc = self._proc, None
        fds, self._cmd_w, self._int_w = (self._cmd_w, self._int_w), -1, -1
        for fd in fds:
            if fd < 0:
                continue
            os.close(fd)
            if proc is not None and proc.poll() is None:
                try:
                    proc.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    pass
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def kill_children_now(self) -> None:
        # The whole group: processes the user's code started live in node's session too.
        if self._proc is not None:
            with contextlib.suppress(OSError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    def _send(self, frame: dict[str, Any]) -> None:
        data = (json.dumps(frame) + "\n").encode()
        with self._send_lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self._cmd_w, view) :]

    def _interrupt_node(self) -> None:
        """Ask driver.js's worker thread to stop whatever the main thread is doing."""
        self._stdin_cancel.set()
        if self._node_alive() and self._int_w >= 0:
            try:
                os.write(self._int_w, b"!")
            except OSError:
                pass

    # ---- reading from node (background threads) ---------------------------------------

    def _read_events(self, fd: int, proc: subprocess.Popen[bytes]) -> None:
        with open(fd, "rb", buffering=1 << 20) as events:
            for line in events:
                try:
                    self._on_event(json.loads(line))
                except Exception:
                    self.log.exception("bad frame from driver.js: %r", line[:200])
        code = proc.wait()
        if proc is self._proc:  # not a shutdown we asked for
            self.log.warning("node exited with code %s", code)
        gone = f"The Node.js process exited (code {code}); its state is lost."
        for rid, pending in list(self._pending.items()):
            self._on_event(
                {"t": "done" if pending.kind == "exec" else "reply", "id": rid, "ok": False}
                | {"status": "error", "ename": "NodeExited", "evalue": gone, "traceback": [gone]}
            )

    def _read_raw(self, name: str, pipe: Any) -> None:
        """Forward what bypasses the driver's capture (child processes, fs.writeSync(1))."""
        while chunk := pipe.read1(1 << 16):
            self._publish("stream", {"name": name, "text": chunk.decode(errors="replace")})
        pipe.close()

    def _publish(self, msg_type: str, content: dict[str, Any], parent: dict | None = None) -> None:
        self.session.send(
            self.iopub_socket,
            msg_type,
            content,
            parent=parent if parent is not None else self._out_parent,
            ident=self._topic(msg_type),
        )

    def _on_event(self, frame: dict[str, Any]) -> None:
        kind = frame["t"]
        if kind == "stream":
            parent = self._cell_parents.get(frame["cell"]) if "cell" in frame else None
            self._publish("stream", {"name": frame["name"], "text": frame["text"]}, parent)
        elif kind == "display":
            display_id = frame.get("display_id")
            content = {
                "data": frame["data"],
                "metadata": frame.get("metadata", {}),
                "transient": {} if display_id is None else {"display_id": display_id},
            }
            self._publish("update_display_data" if frame.get("update") else "display_data", content)
        elif kind == "clear":
            self._publish("clear_output", {"wait": frame["wait"]})
        elif kind == "result":
            pending = self._pending.get(frame["id"])
            content = {"execution_count": frame["count"], "data": frame["data"], "metadata": {}}
            self._publish("execute_result", content, pending.parent if pending else None)
        elif kind in ("done", "reply"):
            pending = self._pending.pop(frame["id"], None)
            if pending is None:
                return
            if kind == "done" and frame["status"] == "error" and not pending.silent:
                error = {k: frame[k] for k in ("ename", "evalue", "traceback")}
                self._publish("error", error, pending.parent)
            pending.loop.call_soon_threadsafe(_resolve, pending.future, frame)
        elif kind == "input":
            threading.Thread(target=self._stdin_roundtrip, args=(frame,), daemon=True).start()
        elif kind == "log":
            self.log.warning("driver.js: %s", frame["text"])

    # ---- stdin ------------------------------------------------------------------------

    def _stdin_roundtrip(self, frame: dict[str, Any]) -> None:
        """input_request -> input_reply on the stdin socket, in a thread, cancellable.

        ipykernel's own _input_request blocks in a polling loop that only a
        KeyboardInterrupt ends; here an interrupt (or the cell ending) sets _stdin_cancel.
        """
        reply: dict[str, Any] = {"t": "input_reply", "id": frame["id"]}
        parent, ident = self._out_parent, self._stdin_ident
        with self._stdin_lock:
            try:
                while self.stdin_socket.poll(0):  # drop stale replies
                    self.stdin_socket.recv_multipart()
                content = {"prompt": frame["prompt"], "password": frame["password"]}
                self.session.send(self.stdin_socket, "input_request", content, parent, ident=ident)
                while not self._stdin_cancel.is_set():
                    if self.stdin_socket.poll(50, zmq.POLLIN):
                        _, msg = self.session.recv(self.stdin_socket)
                        if msg is not None:
                            reply["value"] = msg["content"]["value"]
                            break
                else:
                    reply["error"] = "input cancelled"
            except Exception as err:
                reply["error"] = f"input failed: {err}"
        try:
            self._send(reply)
        except OSError:
            pass  # node is gone; nobody is waiting for the value any more

    # ---- Jupyter handlers -------------------------------------------------------------

    def start(self) -> None:
        super().start()
        # Signal interrupt mode: IPKernelApp ignores SIGINT; route it to node instead. The
        # signal may land on any thread (e.g. a reader blocked in read()), and a plain
        # signal.signal handler would then wait for the main loop's next wake-up;
        # add_signal_handler wakes the loop through its wakeup fd.
        try:
            self.io_loop.asyncio_loop.add_signal_handler(signal.SIGINT, self._interrupt_node)
        except (AttributeError, RuntimeError, ValueError):
            signal.signal(signal.SIGINT, lambda *_: self._interrupt_node())

    def pre_handler_hook(self) -> None:
        # ipykernel swaps in default_int_handler while a shell handler runs, so a SIGINT
        # would raise KeyboardInterrupt in the Python kernel instead of reaching node.
        pass

    def post_handler_hook(self) -> None:
        pass

    def _send_interrupt_children(self) -> None:
        # Message interrupt mode: ipykernel would SIGINT our own process group. Node is in
        # its own session and listens on the interrupt pipe instead.
        self._interrupt_node()

    async def _request(self, frame: dict[str, Any], **pending: Any) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        rid = frame["id"] = next(self._ids)
        waiter = _Pending(loop, loop.create_future(), **pending)
        self._pending[rid] = waiter
        if waiter.kind == "exec":
            self._cell_parents[rid] = waiter.parent
            if len(self._cell_parents) > CELL_PARENTS_KEPT:
                del self._cell_parents[next(iter(self._cell_parents))]
        try:
            self._send(frame)
        except OSError:
            self._pending.pop(rid, None)
            raise
        return await waiter.future

    async def _ensure_node(self) -> str | None:
        """Restart node if user code ended it (e.g. process.exit()); the error, if any."""
        if self._node_error or self._node_alive():
            return self._node_error
        if self._proc is not None:
            code = self._proc.poll()
            await asyncio.to_thread(self._stop_node)
            note = f"Node.js exited (code {code}); starting a new process: earlier state is lost.\n"
            self._publish("stream", {"name": "stderr", "text": note})
        self._spawn()
        return None

    async def do_execute(
        self,
        code: str,
        silent: bool,
        store_history: bool = True,
        user_expressions: dict | None = None,
        allow_stdin: bool = False,
        **_: Any,
    ) -> dict[str, Any]:
        parent = self.get_parent("shell")
        self._out_parent, self._stdin_ident = parent, self._parent_ident["shell"]
        self._stdin_cancel = threading.Event()
        error = await self._ensure_node()
        frame: dict[str, Any]
        if error:
            frame = {
                "status": "error",
                "ename": "NodeNotFound",
                "evalue": error,
                "traceback": [error],
            }
            if not silent:
                self._publish("error", {k: frame[k] for k in ("ename", "evalue", "traceback")})
        else:
            request = {"t": "exec", "code": code, "silent": silent, "allow_stdin": allow_stdin}
            request["count"] = self.execution_count
            frame = await self._request(request, kind="exec", parent=parent, silent=silent)
        self._stdin_cancel.set()
        reply = {"status": frame["status"], "execution_count": self.execution_count}
        if frame["status"] == "ok":
            return reply | {"payload": [], "user_expressions": {}}
        return reply | {k: frame[k] for k in ("ename", "evalue", "traceback")}

    async def _ask(self, frame: dict[str, Any]) -> dict[str, Any]:
        """A query (complete/inspect/is_complete); empty if node is busy or gone."""
        if self._node_error or not self._node_alive():
            return {}
        try:
            reply = await asyncio.wait_for(self._request(frame, kind="reply"), timeout=5)
        except (TimeoutError, OSError):
            return {}
        return reply if reply.get("ok") else {}

    async def do_complete(self, code: str, cursor_pos: int | None) -> dict[str, Any]:
        cursor = len(code) if cursor_pos is None else cursor_pos
        reply = await self._ask({"t": "complete", "before": code[:cursor]})
        start = cursor - len(reply.get("token", ""))
        return {
            "status": "ok",
            "matches": reply.get("matches", []),
            "cursor_start": start,
            "cursor_end": cursor,
            "metadata": {},
        }

    async def do_inspect(
        self, code: str, cursor_pos: int, detail_level: int = 0, omit_sections: Any = ()
    ) -> dict[str, Any]:
        reply = await self._ask(
            {"t": "inspect", "before": code[:cursor_pos], "after": code[cursor_pos:]}
        )
        text = reply.get("text")
        data = {"text/plain": text} if text else {}
        return {"status": "ok", "found": bool(text), "data": data, "metadata": {}}

    async def do_is_complete(self, code: str) -> dict[str, Any]:
        reply = await self._ask({"t": "is_complete", "code": code})
        status = reply.get("status", "unknown")
        return {"status": status, "indent": ""} if status == "incomplete" else {"status": status}

    async def do_shutdown(self, restart: bool) -> dict[str, Any]:
        # _stop_node waits for node to leave (up to seconds): not on the loop.
        await asyncio.to_thread(self._stop_node)
        return {"status": "ok", "restart": restart}


def _resolve(future: asyncio.Future[dict[str, Any]], frame: dict[str, Any]) -> None:
    if not future.done():
        future.set_result(frame)
