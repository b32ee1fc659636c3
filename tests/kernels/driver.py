"""Driving a kernel over the Jupyter protocol in tests: start/stop, and one execution's
IOPub messages (with arrival times), reply and stdin round trips."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client import AsyncKernelManager

from icpy_kernels.runtime.channels import KernelClient

TIMEOUT = 15


@dataclass
class Result:
    reply: dict[str, Any]
    reply_at: float
    msgs: list[tuple[float, dict[str, Any]]]
    input_requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def content(self) -> dict[str, Any]:
        return self.reply["content"]

    def of_type(self, msg_type: str) -> list[dict[str, Any]]:
        return [m["content"] for _, m in self.msgs if m["msg_type"] == msg_type]

    def streams(self, name: str) -> list[tuple[float, str]]:
        return [
            (t, m["content"]["text"])
            for t, m in self.msgs
            if m["msg_type"] == "stream" and m["content"]["name"] == name
        ]

    def text(self, name: str = "stdout") -> str:
        return "".join(t for _, t in self.streams(name))

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.of_type("error")

    @property
    def result(self) -> str | None:
        results = self.of_type("execute_result")
        return results[-1]["data"]["text/plain"] if results else None


async def start_kernel(kernel_name: str, cwd: Path | None = None) -> tuple[AsyncKernelManager, Any]:
    # Our client class: jupyter_client's own can miss a reply under load (see runtime/channels.py).
    km = AsyncKernelManager(kernel_name=kernel_name, client_factory=KernelClient)
    await km.start_kernel(cwd=str(cwd) if cwd else None)
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=30)
    return km, kc


async def stop_kernel(km: AsyncKernelManager, kc: Any) -> None:
    kc.stop_channels()
    await km.shutdown_kernel()


async def run(
    kc: Any,
    code: str,
    *,
    allow_stdin: bool = False,
    answers: tuple[str, ...] = (),
    timeout: float = TIMEOUT,
) -> Result:
    """Execute, collecting IOPub messages (with arrival times) until idle, and the reply."""
    mid = kc.execute(code, allow_stdin=allow_stdin, stop_on_error=False)

    async def iopub() -> list[tuple[float, dict[str, Any]]]:
        msgs = []
        while True:
            msg = await kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != mid:
                continue
            msgs.append((time.monotonic(), msg))
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return msgs

    async def shell() -> tuple[float, dict[str, Any]]:
        while True:
            msg = await kc.get_shell_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") == mid:
                return time.monotonic(), msg

    async def stdin() -> list[dict[str, Any]]:
        requests = []
        for answer in answers:
            msg = await kc.get_stdin_msg(timeout=timeout)
            requests.append(msg["content"])
            kc.input(answer)
        return requests

    msgs, (reply_at, reply), requests = await asyncio.gather(iopub(), shell(), stdin())
    return Result(reply, reply_at, msgs, requests)
