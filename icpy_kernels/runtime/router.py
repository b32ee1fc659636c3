"""Routes a kernel's messages to their execution by parent msg_id: the running one, or, for
output that arrives after its result (a timer, a thread, a background job), one of the
executions that finished recently."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ..protocol.iopub import parent_id
from .execution import Execution
from .shell import ShellRequests

LATE_KEPT = 16  # finished executions per session that still take late output (memory bound)


class Router:
    """One per session; owns the routes and which execution's ``input()`` awaits a reply."""

    def __init__(self, shell: ShellRequests) -> None:
        self.shell = shell
        self._running: dict[str, Execution] = {}
        self._finished: OrderedDict[str, Execution] = OrderedDict()
        self.input_pending: str | None = None  # execution_id whose input() awaits a reply

    def running(self, msg_id: str, execution: Execution) -> None:
        self._running[msg_id] = execution

    def finished(self, msg_id: str) -> None:
        """Its cell is over; what its kernel still sends under it is late output."""
        execution = self._running.pop(msg_id, None)
        if execution is None:
            return
        self._finished[msg_id] = execution
        while len(self._finished) > LATE_KEPT:
            self._finished.popitem(last=False)[1].close()

    def forget_finished(self) -> None:
        """The kernel is gone (restart, shutdown): nothing late can come any more."""
        for execution in self._finished.values():
            execution.close()
        self._finished.clear()

    def on_iopub(self, msg: dict[str, Any]) -> None:
        pid = parent_id(msg) or ""
        execution = self._running.get(pid) or self._finished.get(pid)
        if execution is not None:
            execution.on_iopub(msg)

    def on_shell(self, msg: dict[str, Any]) -> None:
        pid = parent_id(msg) or ""
        if not self.shell.deliver(msg, pid) and (execution := self._running.get(pid)) is not None:
            execution.on_reply(msg)

    def on_stdin(self, msg: dict[str, Any]) -> None:
        execution = self._running.get(parent_id(msg) or "")
        if execution is None or msg["header"]["msg_type"] != "input_request":
            return
        content = msg["content"]
        self.input_pending = execution.execution_id
        execution.add_update({"kind": "input_request", "prompt": content.get("prompt", ""),
                              "password": bool(content.get("password", False))})
