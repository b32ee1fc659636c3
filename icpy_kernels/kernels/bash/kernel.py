"""BashKernel: a Jupyter kernel running cells in one persistent interactive bash."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import subprocess
from typing import Any

import zmq
from ipykernel.kernelbase import Kernel

from icpy_kernels import __version__

from ..lifecycle import OrderlyShutdown
from .shell import BashProcess
from .syntax import completion_context, is_complete, word_at

STDIN_POLL = 0.005


@functools.cache
def _bash_version() -> str:
    """`$BASH_VERSION`, asked once per process, the first time a kernel_info needs it."""
    try:
        out = subprocess.run(
            ["bash", "-c", "echo $BASH_VERSION"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class BashKernel(OrderlyShutdown, Kernel):
    """Cells go to a long-lived `bash -i`; stdout/stderr stream as separate IOPub messages."""

    implementation = "icpy_bash"
    implementation_version = __version__
    language = "bash"

    # The version is not computed at import (that ran bash in every process importing the
    # module): kernel_info_request finds it off the loop; these properties read the cache.
    @property
    def language_version(self) -> str:
        return _bash_version()

    @property
    def language_info(self) -> dict[str, Any]:  # type: ignore[override]
        return {
            "name": "bash",
            "version": _bash_version(),
            "mimetype": "text/x-sh",
            "file_extension": ".sh",
            "codemirror_mode": "shell",
            "pygments_lexer": "bash",
        }

    @property
    def banner(self) -> str:  # type: ignore[override]
        return f"Bash (icpy) kernel {__version__}, GNU bash {_bash_version()}"

    async def kernel_info_request(self, stream: Any, ident: Any, parent: Any) -> None:
        await asyncio.to_thread(_bash_version)
        await super().kernel_info_request(stream, ident, parent)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shell: BashProcess | None = None
        self._silent = False
        self._allow_stdin_cell = False
        self._input_task: asyncio.Task[None] | None = None
        # Output is sent from fd-reader callbacks, outside the request's context where
        # ipykernel keeps the parent header: remember it per cell (background jobs writing
        # between cells are attributed to the last cell).
        self._out_parent: dict[str, Any] = {}
        self._stdin_ident: Any = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        super().start()
        self._loop = self.io_loop.asyncio_loop
        # "signal" interrupt mode SIGINTs the kernel's process group; bash lives in its own
        # session, so forward the signal to it instead of raising KeyboardInterrupt here.
        self._loop.add_signal_handler(signal.SIGINT, self._interrupt_shell)
        self.shell = self._new_shell()

    def _new_shell(self) -> BashProcess:
        return BashProcess(self._loop, self._emit, self._on_input_request)

    def pre_handler_hook(self) -> None:
        # ipykernel would install default_int_handler here; keep forwarding SIGINT to bash.
        pass

    def post_handler_hook(self) -> None:
        pass

    def kill_children_now(self) -> None:
        if self.shell is not None:
            self.shell.kill_group()

    async def do_shutdown(self, restart: bool) -> dict[str, Any]:
        shell, self.shell = self.shell, None
        if shell is not None:
            # shutdown_request arrives on the control thread; the shell belongs to the main loop.
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(shell.kill(), shell.loop))
        return {"status": "ok", "restart": restart}

    # -- interrupts ------------------------------------------------------------------------

    def _interrupt_shell(self) -> None:
        if self.shell is not None:
            self.shell.interrupt()

    def _send_interrupt_children(self) -> None:
        # interrupt_request ("message" mode) lands here, on the control thread.
        self._interrupt_shell()

    # -- execution -------------------------------------------------------------------------

    def _emit(self, name: str, text: str) -> None:
        if not self._silent and self.session is not None:
            self.session.send(
                self.iopub_socket,
                "stream",
                {"name": name, "text": text},
                self._out_parent,
                ident=self._topic("stream"),
            )

    async def _ensure_shell(self) -> tuple[BashProcess, str | None]:
        """The live shell, restarting it if it died; the second item explains a restart."""
        note = None
        shell = self.shell
        if shell is None or not shell.alive:
            if shell is not None:
                note = f"bash exited (status {shell.returncode}) and was restarted; state lost"
                await shell.kill()
            shell = self.shell = self._new_shell()
        if not await shell.wait_ready():
            raise RuntimeError("bash did not start")
        return shell, note

    async def do_execute(
        self,
        code: str,
        silent: bool,
        store_history: bool = True,
        user_expressions: dict[str, Any] | None = None,
        allow_stdin: bool = False,
        *,
        cell_meta: dict[str, Any] | None = None,
        cell_id: str | None = None,
    ) -> dict[str, Any]:
        self._silent = silent
        self._allow_stdin_cell = allow_stdin
        self._out_parent = self.get_parent("shell")
        self._stdin_ident = self._get_shell_context_var(self._shell_parent_ident)
        reply: dict[str, Any] = {
            "execution_count": self.execution_count,
            "payload": [],
            "user_expressions": {},
        }
        try:
            shell, note = await self._ensure_shell()
        except RuntimeError as err:
            return self._error(reply, "ShellError", str(err), -1, silent)
        try:
            if note and not silent:
                self._emit("stderr", f"[icpy] {note}\n")
            status = await shell.execute(code, allow_stdin)
        finally:
            if self._input_task is not None:
                self._input_task.cancel()
                self._input_task = None
        if status is None:
            # The cell ended the shell (`exit 3`, `exec`, a crash): start a fresh one.
            code_ = shell.returncode if shell.returncode is not None else -1
            await shell.kill()
            self.shell = self._new_shell()
            evalue = f"bash exited with status {code_}; the shell was restarted and its state lost"
            if code_ != 0:
                return self._error(reply, "ExitStatus", evalue, code_, silent, restarted=True)
            # `exit 0` succeeded, as it does under bash: a notice on stderr, not an error.
            if not silent:
                self._emit("stderr", f"[icpy] {evalue}\n")
            reply.update(status="ok", exit_code=0, restarted=True)
            return reply
        if shell.interrupted and status != 0:
            return self._error(reply, "KeyboardInterrupt", "interrupted", status, silent)
        if status != 0:
            return self._error(reply, "ExitStatus", f"exit status {status}", status, silent)
        reply.update(status="ok", exit_code=0)
        return reply

    def _error(
        self,
        reply: dict[str, Any],
        ename: str,
        evalue: str,
        exit_code: int,
        silent: bool,
        restarted: bool = False,
    ) -> dict[str, Any]:
        content = {"ename": ename, "evalue": evalue, "traceback": [f"{ename}: {evalue}"]}
        if not silent:
            self.send_response(self.iopub_socket, "error", content)
        reply.update(content, status="error", exit_code=exit_code)
        if restarted:
            reply["restarted"] = True
        return reply

    # -- stdin -----------------------------------------------------------------------------

    def _on_input_request(self, seq: int, prompt: str, password: bool) -> None:
        self._input_task = self._loop.create_task(self._answer_input(seq, prompt, password))

    async def _answer_input(self, seq: int, prompt: str, password: bool) -> None:
        shell = self.shell
        if shell is None:
            return
        value = None
        if self._allow_stdin_cell:
            value = await self._ask_frontend(shell, prompt, password)
        if shell.busy and not shell.interrupted:
            shell.reply_input(value)

    async def _ask_frontend(self, shell: BashProcess, prompt: str, password: bool) -> str | None:
        """ipykernel's _input_request, but awaiting so output and interrupts keep flowing."""
        assert self.session is not None
        sock = self.stdin_socket
        with contextlib.suppress(zmq.ZMQError):
            while sock.poll(0):
                sock.recv_multipart(zmq.NOBLOCK)
        # The reader callback that got here runs outside the request's context: use the
        # parent and routing identity saved by do_execute.
        self.session.send(
            sock,
            "input_request",
            {"prompt": prompt, "password": password},
            self._out_parent,
            ident=self._stdin_ident,
        )
        while shell.busy and not shell.interrupted and shell.alive:
            if sock.poll(0):
                _, reply = self.session.recv(sock)
                if reply is not None:
                    value = reply.get("content", {}).get("value", "")
                    return None if value == "\x04" else str(value)
            await asyncio.sleep(STDIN_POLL)
        return None

    # -- introspection ---------------------------------------------------------------------

    async def _query(self, kind: str, word: str) -> str | None:
        if self.shell is None or not self.shell.alive:
            return None
        return await self.shell.query(kind, word)

    async def do_complete(self, code: str, cursor_pos: int) -> dict[str, Any]:
        ctx = completion_context(code, cursor_pos)
        matches: list[str] = []
        out = await self._query(ctx.kind, ctx.query)
        if out is not None:
            matches = ctx.matches(out)
        return {
            "status": "ok",
            "matches": matches,
            "cursor_start": ctx.start,
            "cursor_end": cursor_pos,
            "metadata": {},
        }

    async def do_inspect(
        self,
        code: str,
        cursor_pos: int,
        detail_level: int = 0,
        omit_sections: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        word = word_at(code, cursor_pos)
        text = (await self._query("inspect", word)) if word else None
        text = (text or "").strip()
        data = {"text/plain": text} if text else {}
        return {"status": "ok", "found": bool(text), "data": data, "metadata": {}}

    async def do_is_complete(self, code: str) -> dict[str, Any]:
        status = await asyncio.to_thread(is_complete, code)
        reply: dict[str, Any] = {"status": status}
        if status == "incomplete":
            reply["indent"] = ""
        return reply
