"""One execution's state: updates with their seq, nbformat outputs, truncation, the final result."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ..protocol import events
from ..protocol.iopub import Update, system_exit_code, to_output, translate
from ..protocol.messages import ExecuteRequest

log = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]

TERMINAL = ("completed", "failed", "timeout", "interrupted")
INTERRUPT_SETTLE = 0.05  # from execute_input to the cell's own code, in ipykernel


def _size(update: Update) -> int:
    if update["kind"] == "stream":
        return len(update["text"].encode("utf-8", "surrogatepass"))
    if update["kind"] in ("result", "display"):
        return sum(len(str(v)) for v in update["data"].values())
    return 0


def _lines(text: str) -> list[str]:
    """Split on \\n, \\r\\n and \\r only: str.splitlines would also split on U+2028, \\x1c...
    inside a line. (str.split is ~2x faster than a regex on millions of lines.)"""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _cut_utf8(text: str, budget: int) -> str:
    return text.encode("utf-8", "surrogatepass")[:budget].decode("utf-8", "ignore")


class Execution:
    """Fed IOPub messages and replies by its session; tells its listeners every event.

    Listeners are plain callables that must not block (they enqueue): the IOPub reader
    must never wait on a client, or ZMQ would start dropping the kernel's output.
    """

    def __init__(self, request: ExecuteRequest, session_id: str, language: str) -> None:
        self.request = request
        self.code_bytes = len(request.code.encode("utf-8", "surrogatepass"))  # its share of a queue
        self.execution_id = request.execution_id
        self.session_id = session_id
        self.language = language
        self.listeners: list[Listener] = []
        self.status = "running"
        self.seq = 0
        self.outputs: list[dict[str, Any]] = []
        self.result_bundle: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.execution_count: int | None = None
        self.exit_code: int | None = None
        self.kernel_restarted = False
        self.truncated = False
        self._bytes = 0
        self._clear_pending = False
        self.started = time.monotonic()
        self.finished: float | None = None
        self.last_output = self.started
        self.reply: dict[str, Any] | None = None
        self.idle = False
        self.done = asyncio.Event()  # set once both the reply and status:idle arrived
        self.result: dict[str, Any] | None = None
        self.msg_id: str | None = None
        self.interrupt_requested = False
        self._stale = False  # late output arrived since ``result`` was built

    # -- events out -------------------------------------------------------------
    def emit(self, event: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # one broken listener must not starve the others (or the reader)
                log.exception("execution %s: a listener failed on %s", self.execution_id, event.get("type"))

    def start_event(self) -> dict[str, Any]:
        return events.execution_started(self.execution_id, self.session_id, self.language)

    def _publish(self, update: Update, late: bool) -> None:
        self.seq += 1
        self.last_output = time.monotonic()
        self.emit(events.execution_update(self.execution_id, self.seq, update, late))

    async def until_in_user_code(self, limit: float = 2.0) -> None:
        """Wait until the kernel has announced the cell (``execute_input``), plus a moment.

        ipykernel ignores SIGINT while idle, and one that lands in its own code before the
        cell runs aborts the request without any reply: the execution would then hang until
        its timeout. An interrupt sent right after ``execute`` must wait for the cell.
        """
        deadline = time.monotonic() + limit
        while self.execution_count is None and not self.done.is_set():
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.01)
        await asyncio.sleep(INTERRUPT_SETTLE)

    # -- kernel messages in -----------------------------------------------------
    def on_iopub(self, msg: dict[str, Any]) -> None:
        if self.result is not None:
            self._on_late(msg)
            return
        msg_type = msg["header"]["msg_type"]
        if msg_type == "status":
            if msg["content"].get("execution_state") == "idle":
                self.idle = True
                self._check_done()
            return
        if msg_type == "execute_input":
            self.execution_count = msg["content"].get("execution_count", self.execution_count)
            return
        update = translate(msg)
        if update is not None:
            self.add_update(update)

    def _on_late(self, msg: dict[str, Any]) -> None:
        """Output sent under this cell after its result (a timer, a thread, a background job):
        told to whoever still listens, marked ``late``, and kept in ``outputs``. The status,
        ``error`` and ``exit_code`` stay those the result gave."""
        update = translate(msg)
        if update is not None and update["kind"] != "input_request":
            self.add_update(update, late=True)
            self._stale = True

    def on_reply(self, msg: dict[str, Any]) -> None:
        self.reply = msg["content"]
        self.execution_count = self.reply.get("execution_count", self.execution_count)
        self._check_done()

    def _check_done(self) -> None:
        if self.reply is not None and self.idle:
            self.done.set()

    def add_update(self, update: Update, late: bool = False) -> None:
        kind = update["kind"]
        if kind == "error" and not late:
            self.error = {k: update[k] for k in ("ename", "evalue", "traceback")}
        elif self.truncated:
            return
        size = _size(update)
        if self._bytes + size > self.request.config.max_output_size and kind in ("stream", "result", "display"):
            budget = self.request.config.max_output_size - self._bytes
            if kind == "stream" and budget > 0:
                self._accept({**update, "text": _cut_utf8(update["text"], budget)}, late)
            self.truncated = True
            self._accept({"kind": "stream", "name": "stderr", "text": (
                f"\n[icpy] output truncated: more than {self.request.config.max_output_size} bytes "
                "(config.max_output_size); further output of this execution is discarded\n"
            )}, late)
            return
        self._bytes += size
        if kind == "result" and not late:
            self.result_bundle = update["data"]
            if update.get("execution_count") is not None:
                self.execution_count = update["execution_count"]
        self._accept(update, late)

    def _accept(self, update: Update, late: bool = False) -> None:
        self._record_output(update)
        self._publish(update, late)

    def _record_output(self, update: Update) -> None:
        """Keep ``outputs`` as a notebook front end would show them (nbclient's rules)."""
        kind = update["kind"]
        if kind == "clear_output":
            if update["wait"]:
                self._clear_pending = True
            else:
                self.outputs.clear()
            return
        if kind == "display" and update["update"]:
            for out in self.outputs:
                if out.get("_display_id") == update["display_id"] and update["display_id"] is not None:
                    out["data"], out["metadata"] = update["data"], update["metadata"]
            return
        if self._clear_pending:
            self.outputs.clear()
            self._clear_pending = False
        output = to_output(update)
        if output is None:
            return
        last = self.outputs[-1] if self.outputs else None
        if output["output_type"] == "stream":
            # Chunks are joined once at the end: += on a dict value would copy the whole
            # text for every message of a long stream.
            if last and last["output_type"] == "stream" and last["name"] == output["name"]:
                last["_chunks"].append(output.pop("text"))
                return
            output["_chunks"] = [output.pop("text")]
        if kind == "display" and update["display_id"] is not None:
            output["_display_id"] = update["display_id"]
        self.outputs.append(output)

    # -- the end ----------------------------------------------------------------
    def finish(self, status: str | None = None) -> dict[str, Any]:
        """Decide the status (unless forced), build the result, tell listeners. Idempotent."""
        if self.result is not None:
            return self.result
        reply = self.reply or {}
        exit_request = system_exit_code(self.error)  # sys.exit(n): n, as python exits
        if status is None:
            ok = reply.get("status", "ok") == "ok" and self.error is None
            status = "completed" if ok or exit_request == 0 else "failed"
        if self.exit_code is None:
            code = reply.get("exit_code", exit_request)
            self.exit_code = code if isinstance(code, int) else (0 if status == "completed" else 1)
        if reply.get("restarted"):
            self.kernel_restarted = True
        self.status = status
        self.finished = time.monotonic()
        self.result = self._build_result()
        self.done.set()
        self.emit(self.result)
        if self.msg_id is None:  # never reached the kernel: nothing can come late
            self.close()
        return self.result

    def close(self) -> None:
        """No more late output can come (runtime/router.py). The registry of recent executions
        keeps this object: its listeners would keep the hub's update log and the client alive."""
        self.listeners.clear()

    @property
    def output_bytes(self) -> int:
        return self._bytes

    def snapshot(self) -> dict[str, Any]:
        """The result when finished (with any late output); otherwise the same shape with
        status ``running``."""
        if self.result is not None:
            if self._stale:  # a new dict: a result once sent is never changed
                self.result = {**self._build_result(), "timestamp": self.result["timestamp"]}
                self._stale = False
            return self.result
        return {**self._build_result(), "status": self.status}

    @staticmethod
    def _public(output: dict[str, Any]) -> dict[str, Any]:
        public = {k: v for k, v in output.items() if not k.startswith("_")}
        if "_chunks" in output:
            public["text"] = "".join(output["_chunks"])
        return public

    def _build_result(self) -> dict[str, Any]:
        outputs = [self._public(o) for o in self.outputs]
        streams = {"stdout": [], "stderr": []}
        for o in outputs:
            if o["output_type"] == "stream":
                streams.setdefault(o["name"], []).append(o["text"])
        output = _lines("".join(streams["stdout"]))
        if self.result_bundle and "text/plain" in self.result_bundle:
            output.append(self.result_bundle["text/plain"])
        errors = _lines("".join(streams["stderr"]))
        if self.error:
            errors.append(f"{self.error['ename']}: {self.error['evalue']}")
        return {
            "type": "execution_result",
            "execution_id": self.execution_id,
            "session_id": self.session_id,
            "language": self.language,
            "status": self.status,
            "output": output,
            "errors": errors,
            "outputs": outputs,
            "result": self.result_bundle,
            "error": self.error,
            "execution_count": self.execution_count,
            "execution_time": round((self.finished or time.monotonic()) - self.started, 6),
            "exit_code": self.exit_code,
            "kernel_restarted": self.kernel_restarted,
            "truncated": self.truncated,
            "timestamp": events.now(),
        }
