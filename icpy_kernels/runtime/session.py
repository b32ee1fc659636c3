"""One session = one kernel of one language, running its executions one at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from ..errors import (
    IcpyError,
    KernelStartError,
    NotWaitingForInput,
    SessionNotFound,
)
from ..protocol import events
from .channels import read_forever
from .context import enter as enter_context
from .execution import Execution
from .kernels import KernelHandle
from .languages import Language
from .router import Router
from .shell import ShellRequests

log = logging.getLogger(__name__)

LIVENESS_INTERVAL = 0.5  # how often a running execution checks that its kernel still lives
READY_TIMEOUT = 60.0

SessionListener = Callable[[dict[str, Any]], None]


class Session:
    def __init__(
        self,
        session_id: str,
        language: Language,
        handle: KernelHandle,
        *,
        named: bool,
        owner: str | None,
        client: str | None = None,
        memory: int = 0,
        interrupt_grace: float = 2.0,
        keepalive_interval: float = 5.0,
    ) -> None:
        self.id = session_id
        self.language = language
        self.handle = handle
        self.named = named
        self.owner = owner  # the connection whose default session this is (or that named it)
        self.client_id = client or owner  # who counts it (runtime/capacity.py), on any transport
        self.memory = memory  # what it counts against --max-total-memory
        self.interrupt_grace = interrupt_grace
        self.keepalive_interval = keepalive_interval
        self.created = time.time()
        self.last_activity = time.monotonic()
        self.state = "new"  # new -> starting -> idle <-> busy; dead; shutdown
        self.execution_count = 0
        self.restarts = 0
        self.listeners: list[SessionListener] = []  # session-level events (restart, shutdown)
        self.queued = 0
        self.queued_bytes = 0  # code of the executions held (runtime/capacity.py bounds both)
        self.current: Execution | None = None
        self.client: Any = None
        self._lock = asyncio.Lock()  # FIFO: executions run in arrival order
        self._start_lock = asyncio.Lock()
        self._stopped: asyncio.Event | None = None  # set once shutdown() has finished
        self._readers: list[asyncio.Task[None]] = []
        self.shell = ShellRequests(f"session {session_id}")
        self.router = Router(self.shell)  # parent msg_id -> execution, input_pending

    # -- lifecycle ----------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self.state == "shutdown"

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        # Listeners hear ``kernel_status`` when the session turns busy or idle (once per
        # change, not once per IOPub status message).
        previous = getattr(self, "_state", None)
        self._state = value
        if value != previous and value in ("busy", "idle"):
            self._notify("kernel_status", status=value)

    async def ensure_started(self) -> None:
        async with self._start_lock:
            if self.closed:
                raise SessionNotFound(f"Session {self.id!r} has been shut down", session_id=self.id)
            if self.state == "new":
                self.state = "starting"
                try:
                    await self.handle.start()
                    await self._connect()
                except BaseException as exc:
                    # Leave nothing running, and let the next execution try a fresh start.
                    if not self.closed:
                        self.state = "new"
                    await self._discard_kernel()
                    if self.closed and isinstance(exc, Exception):
                        raise self._gone() from exc
                    if isinstance(exc, Exception):
                        raise self._start_failed(exc, "start") from exc
                    raise
                if self.closed:  # shut down while starting: shutdown() stops the kernel once we return
                    raise self._gone()
                self.state = "idle"
                self._notify("session_started")
            elif not await self.handle.is_alive():
                await self._restart_locked("died")

    async def _connect(self) -> None:
        self.client = self.handle.client()
        self.client.start_channels()
        await self.client.wait_for_ready(timeout=READY_TIMEOUT)
        label = f"session {self.id}"
        self._readers = [
            asyncio.create_task(read_forever(self.client.iopub_channel, self.router.on_iopub, label)),
            asyncio.create_task(read_forever(self.client.shell_channel, self.router.on_shell, label)),
            asyncio.create_task(read_forever(self.client.stdin_channel, self.router.on_stdin, label)),
        ]

    async def _disconnect(self) -> None:
        for task in self._readers:
            task.cancel()
        for task in self._readers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._readers = []
        if self.client is not None:
            self.client.stop_channels()
            self.client = None
        self.shell.fail_all()
        self.router.forget_finished()

    async def restart(self, reason: str = "requested") -> None:
        async with self._start_lock:
            if self.closed:
                raise SessionNotFound(f"Session {self.id!r} has been shut down", session_id=self.id)
            current = self.current
            if current is not None and current.result is None:
                # Its kernel is going away: end it now rather than at its timeout.
                current.add_update(self._restarted_error(reason))
                current.kernel_restarted = True
                current.finish("failed")
            await self._restart_locked(reason)

    async def _restart_locked(self, reason: str) -> None:
        if self.closed:  # a shutdown won the race: never bring its kernel back
            return
        self.state = "starting"
        await self._disconnect()
        try:
            await self.handle.restart()
            await self._connect()
        except Exception as exc:
            # A kernel half restarted (e.g. its connection file unreadable) cannot be
            # restarted again: discard it, and the next request starts a fresh one.
            await self._discard_kernel()
            if self.closed:
                return
            self.state = "new"
            raise self._start_failed(exc, "restart") from exc
        self.restarts += 1
        if not self.closed:
            self.state = "busy" if self.current else "idle"
        self._notify("session_restarted", reason=reason)

    async def shutdown(self, reason: str = "requested") -> None:
        """Stop the kernel for good. A second call waits for the first to finish, so a
        server stopping never removes what a session shutting down still uses."""
        if self._stopped is not None:
            await self._stopped.wait()
            return
        self._stopped = asyncio.Event()
        try:
            await self._shutdown(reason)
        finally:
            self._stopped.set()

    async def _shutdown(self, reason: str) -> None:
        self.state = "shutdown"
        if self.current is not None and self.current.result is None:
            self.current.add_update({
                "kind": "error", "ename": "SessionShutdown",
                "evalue": f"The session was shut down ({reason})", "traceback": [],
            })
            self.current.finish("failed")
        # A kernel start or restart in flight completes first (it sees the session closed):
        # stopping a kernel while jupyter_client launches it would leave the process running.
        async with self._start_lock:
            await self._disconnect()
            await self.handle.shutdown()
        self._notify("session_shutdown", reason=reason)

    async def _discard_kernel(self) -> None:
        """After a failed start or restart: nothing of the kernel stays, and a failure to
        stop what is left must not hide why it failed."""
        await self._disconnect()
        try:
            await self.handle.shutdown()
        except Exception:
            log.exception("session %s: stopping a kernel that failed to start", self.id)

    def _start_failed(self, exc: Exception, step: str) -> IcpyError:
        if isinstance(exc, IcpyError):  # already says what failed (kernel_start_failed, sandbox...)
            return exc
        return KernelStartError(f"Kernel {self.language.kernel_name!r} failed to {step}: {exc}",
                                session_id=self.id)

    @staticmethod
    def _restarted_error(reason: str) -> dict[str, Any]:
        return {"kind": "error", "ename": "SessionRestarted",
                "evalue": f"The session was restarted ({reason}); its state is lost", "traceback": []}

    def _gone(self) -> SessionNotFound:
        return SessionNotFound(f"Session {self.id!r} has been shut down", session_id=self.id)

    def _notify(self, event: str, **fields: Any) -> None:
        message = {"type": event, "session_id": self.id, "language": self.language.name,
                   **fields, "timestamp": events.now()}
        for listener in list(self.listeners):
            try:
                listener(message)
            except Exception:  # a broken listener must not abort a restart or shutdown
                log.exception("session %s: a listener failed on %s", self.id, event)

    def answer_input(self, execution: Execution, value: str) -> None:
        """Deliver one line to the execution's pending ``input()``; once per input_request."""
        if self.current is not execution or execution.result is not None \
                or self.router.input_pending != execution.execution_id or self.client is None:
            raise NotWaitingForInput(
                f"Execution {execution.execution_id!r} is not waiting for input",
                execution_id=execution.execution_id, session_id=self.id)
        self.router.input_pending = None
        self.client.input(value)

    async def editor_request(self, send: Callable[[], str], busy_wait: float) -> dict[str, Any] | None:
        """complete, inspect, is_complete: the reply's content, or None when the kernel cannot
        answer within ``busy_wait`` (runtime/shell.py). A first start is not a busy kernel:
        it is waited for (and fails as kernel_start_failed)."""
        if self.state == "new":
            await self.ensure_started()
        return await self.shell.editor(
            self.ensure_started, send,
            lambda: self.current is not None or self.queued > 0 or self.state != "idle", busy_wait)

    async def _run_silent(self, code: str) -> dict[str, Any]:
        reply = await self.shell.request(lambda: self.client.execute(
            code, silent=True, store_history=False, allow_stdin=False, stop_on_error=False))
        return reply["content"]

    # -- executions ---------------------------------------------------------------
    async def execute(self, execution: Execution) -> Execution:
        """Queue behind earlier executions, then run; the result is also told to listeners."""
        size = execution.code_bytes
        self.queued += 1
        self.queued_bytes += size
        self.last_activity = time.monotonic()
        try:
            async with self._lock:
                await self.ensure_started()
                await self._run(execution)
        finally:
            self.queued -= 1
            self.queued_bytes -= size
            self.last_activity = time.monotonic()
        return execution

    async def _run(self, execution: Execution) -> None:
        cfg = execution.request.config
        try:
            context = await enter_context(
                self.language.context, self.language.name, self.handle.workspace,
                execution.execution_id, cfg.working_directory, cfg.environment, self._run_silent)
        except ConnectionError:
            # The kernel went away under this step: a shutdown (it never runs, as the
            # executions queued behind it) or a restart (it ends as a running one would).
            if self.closed:
                raise self._gone() from None
            execution.add_update(self._restarted_error("requested"))
            execution.kernel_restarted = True
            execution.finish("failed")
            return

        if execution.interrupt_requested:  # interrupted while queued: it never runs
            if context is not None:
                with contextlib.suppress(Exception):
                    await self._run_silent(context.exit)
            execution.finish("interrupted")
            return
        if self.closed:  # shut down during the context step: it never runs
            raise self._gone()
        self.current = execution
        self.state = "busy"
        execution.started = time.monotonic()
        execution.emit(execution.start_event())
        msg_id = self.client.execute(execution.request.code, silent=False, store_history=True,
                                     allow_stdin=cfg.allow_stdin, stop_on_error=False)
        execution.msg_id = msg_id
        self.router.running(msg_id, execution)  # no await since execute(): no message can be missed
        try:
            status = await self._wait(execution)
        finally:
            self.router.finished(msg_id)
            self.current = None
            if self.state == "busy":  # not over "new" (a failed restart) or "starting"
                self.state = "idle"
        if context is not None and not self.closed and not execution.kernel_restarted:
            with contextlib.suppress(Exception):
                await self._run_silent(context.exit)
        if execution.execution_count is not None:
            self.execution_count = execution.execution_count
        if not self.closed:
            with contextlib.suppress(Exception):
                if (note := await self.handle.after_execution()) is not None:
                    execution.add_update(note)  # e.g. the workspace went over its disk quota
        execution.finish(status)

    async def _wait(self, execution: Execution) -> str | None:
        """Wait for reply + idle under the deadline, watching the kernel; returns a forced status."""
        deadline = execution.started + execution.request.config.timeout
        last_keepalive = execution.started
        while not execution.done.is_set():
            now = time.monotonic()
            if now >= deadline:
                return await self._on_timeout(execution)
            try:
                await asyncio.wait_for(execution.done.wait(), min(deadline - now, LIVENESS_INTERVAL))
            except TimeoutError:
                if self.closed:
                    return "failed"
                if not await self.handle.is_alive():
                    await self._on_death(execution)
                    return "failed"
                quiet_since = max(execution.last_output, last_keepalive)
                if time.monotonic() - quiet_since >= self.keepalive_interval:
                    last_keepalive = time.monotonic()
                    execution.emit(events.keepalive(execution.execution_id))
        if self.closed and execution.result is not None:
            return execution.status
        # "interrupted" only when the interrupt took effect: a cell that finished normally
        # just before the signal arrived (ipykernel ignores SIGINT when idle) completed.
        interrupted = execution.interrupt_requested and (execution.reply or {}).get("status") != "ok"
        return "interrupted" if interrupted else None

    async def _on_timeout(self, execution: Execution) -> str:
        with contextlib.suppress(Exception):
            await self.handle.interrupt()
        try:
            await asyncio.wait_for(execution.done.wait(), self.interrupt_grace)
        except TimeoutError:
            # Still busy after the interrupt (a C-level hang, a signal-ignoring thread):
            # state is sacrificed so the session can serve the next execution.
            await self._restart_under(execution, "timeout")
        return "timeout"

    async def _on_death(self, execution: Execution) -> None:
        execution.add_update({
            "kind": "error", "ename": "KernelDied",
            "evalue": "The kernel died during execution; it was restarted and its state is lost",
            "traceback": [],
        })
        await self._restart_under(execution, "died")

    async def _restart_under(self, execution: Execution, reason: str) -> None:
        """Restart the kernel of a running execution; a restart that fails ends it too, saying
        why (the session then starts a fresh kernel for the next request)."""
        try:
            async with self._start_lock:
                await self._restart_locked(reason)
        except IcpyError as exc:
            execution.add_update({"kind": "error", "ename": "KernelRestartFailed", "traceback": [],
                                  "evalue": f"{exc.message}; the next execution starts a new kernel"})
        execution.kernel_restarted = True

    async def interrupt(self) -> bool:
        """Interrupt the running execution (state is kept); False if nothing was running."""
        execution = self.current
        if execution is None:
            return False
        await execution.until_in_user_code()
        if self.current is not execution or execution.done.is_set():
            # It ended while we waited: the signal would land on the next execution's cell
            # (or before it, where ipykernel drops the request and it hangs to its timeout).
            return False
        execution.interrupt_requested = True
        await self.handle.interrupt()
        return True

    def describe(self) -> dict[str, Any]:
        return {
            "session_id": self.id,
            "language": self.language.name,
            "kernel_name": self.language.kernel_name,
            "named": self.named,
            "state": self.state,
            "execution_count": self.execution_count,
            "restarts": self.restarts,
            "queued": self.queued,
            "created": self.created,
            "current_execution_id": self.current.execution_id if self.current else None,
            "sandbox": self.handle.sandbox_report(),
        }
