"""A scripted kernel behind the ``KernelHandle`` contract, so sessions, the manager and the
service can be driven without a process: failures on demand, replies on a schedule."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from icpy_kernels.config import Settings
from icpy_kernels.runtime import session as session_module
from icpy_kernels.runtime.kernels import KernelHandle, KernelProvider
from icpy_kernels.runtime.languages import BUILTIN_LANGUAGES, Language
from icpy_kernels.runtime.manager import SessionManager
from icpy_kernels.service import Service

# What the fake kernel does for an execute: (delay after the previous step, channel, type, content).
Script = list[tuple[float, str, str, dict[str, Any]]]


def message(msg_type: str, parent: str, content: dict[str, Any]) -> dict[str, Any]:
    return {"header": {"msg_type": msg_type, "msg_id": uuid.uuid4().hex},
            "parent_header": {"msg_id": parent}, "content": content, "metadata": {}}


def cell(*outputs: tuple[float, str, dict[str, Any]], after: Script = ()) -> Script:
    """busy, the outputs (iopub), reply, idle; then ``after`` (output once the cell has ended)."""
    steps: Script = [(0, "iopub", "status", {"execution_state": "busy"}),
                     (0, "iopub", "execute_input", {"execution_count": 1})]
    steps += [(delay, "iopub", kind, content) for delay, kind, content in outputs]
    steps += [(0, "shell", "execute_reply", {"status": "ok", "execution_count": 1}),
              (0, "iopub", "status", {"execution_state": "idle"})]
    return steps + list(after)


class FakeClient:
    def __init__(self, kernel: FakeKernel) -> None:
        self.kernel = kernel
        self.iopub_channel: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.shell_channel: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.stdin_channel: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.tasks: set[asyncio.Task[None]] = set()

    def start_channels(self) -> None:
        pass

    def stop_channels(self) -> None:
        for task in self.tasks:
            task.cancel()

    async def wait_for_ready(self, timeout: float) -> None:
        if self.kernel.fail_ready:
            self.kernel.fail_ready -= 1
            raise RuntimeError("Kernel didn't respond in time")

    def _play(self, parent: str, script: Script) -> str:
        async def play() -> None:
            steps = iter(script)
            async with self.kernel.shell_turn:  # editor requests wait for the reply, as in a kernel
                for delay, channel, kind, content in steps:
                    await asyncio.sleep(delay)
                    getattr(self, f"{channel}_channel").put_nowait(message(kind, parent, content))
                    if kind == "execute_reply":
                        break
            for delay, channel, kind, content in steps:
                await asyncio.sleep(delay)
                getattr(self, f"{channel}_channel").put_nowait(message(kind, parent, content))

        task = asyncio.ensure_future(play())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return parent

    def execute(self, code: str, **_: Any) -> str:
        return self._play(uuid.uuid4().hex, self.kernel.script(code))

    def _editor(self, kind: str, content: dict[str, Any]) -> str:
        msg_id = uuid.uuid4().hex

        async def answer() -> None:
            async with self.kernel.shell_turn:  # a kernel answers its shell requests in turn
                await asyncio.sleep(self.kernel.editor_delay)
                self.shell_channel.put_nowait(message(kind, msg_id, content))

        task = asyncio.ensure_future(answer())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return msg_id

    def complete(self, code: str, cursor_pos: int) -> str:
        return self._editor("complete_reply", {"status": "ok", "matches": [code + "_x"],
                                               "cursor_start": 0, "cursor_end": cursor_pos})

    def inspect(self, code: str, cursor_pos: int, detail_level: int) -> str:
        return self._editor("inspect_reply", {"status": "ok", "found": False, "data": {}})

    def is_complete(self, code: str) -> str:
        return self._editor("is_complete_reply", {"status": "complete"})


class FakeKernel(KernelHandle):
    """Fails ``fail_starts`` starts, ``fail_restarts`` restarts, ``fail_ready`` connects.
    Like jupyter_client's manager, a kernel that is not running cannot be restarted."""

    kernel_name = "python3"

    def __init__(self) -> None:
        self.running = False  # started, as jupyter_client's has_kernel
        self.alive = False  # the process lives (a test kills it by setting this False)
        self.fail_starts = 0
        self.fail_restarts = 0
        self.fail_ready = 0
        self.restart_delay = 0.0
        self.editor_delay = 0.0  # how long the kernel takes to answer one editor request
        self.shell_turn = asyncio.Lock()
        self.starts = 0
        self.script: Callable[[str], Script] = lambda code: cell()

    async def start(self) -> None:
        if self.fail_starts:
            self.fail_starts -= 1
            raise OSError("connection file is unreadable")
        self.running = self.alive = True
        self.starts += 1

    def client(self) -> FakeClient:
        return FakeClient(self)

    async def is_alive(self) -> bool:
        return self.alive

    async def interrupt(self) -> None:
        pass

    async def restart(self) -> None:
        if not self.running:
            raise RuntimeError("Cannot restart the kernel. No previous call to 'start_kernel'.")
        self.running = self.alive = False
        await asyncio.sleep(self.restart_delay)
        if self.fail_restarts:
            self.fail_restarts -= 1
            raise OSError("connection file is unreadable")
        self.running = self.alive = True

    async def shutdown(self) -> None:
        self.running = self.alive = False


class FakeProvider(KernelProvider):
    def __init__(self) -> None:
        self.kernels: list[FakeKernel] = []

    def create(self, kernel_name: str, **_: Any) -> FakeKernel:
        self.kernels.append(FakeKernel())
        return self.kernels[-1]


class FakeLanguages:
    def resolve(self, name: str) -> Language:
        return BUILTIN_LANGUAGES[0]


async def _read_queue(channel: asyncio.Queue[dict[str, Any]], handle: Callable[[dict[str, Any]], None],
                      label: str) -> None:
    while True:
        handle(await channel.get())


@pytest.fixture
def fake_service(monkeypatch: pytest.MonkeyPatch) -> tuple[Service, FakeProvider]:
    monkeypatch.setattr(session_module, "read_forever", _read_queue)
    provider = FakeProvider()
    manager = SessionManager(Settings(token="t"), FakeLanguages(), provider)  # type: ignore[arg-type]
    return Service(manager), provider
