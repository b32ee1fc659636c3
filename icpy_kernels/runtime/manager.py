"""The session registry: named and per-connection sessions, capacity, idle culling, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..config import Settings
from ..errors import CapacityError, ExecutionNotFound, QueueFull, SessionConflict, SessionNotFound
from ..protocol.messages import ExecuteRequest
from ..provisioning.options import SessionSandbox
from . import capacity
from .execution import Execution, Listener
from .kernels import KernelProvider
from .languages import Language, LanguageTable
from .session import Session, SessionListener

log = logging.getLogger(__name__)

RECENT_EXECUTIONS = 1000  # finished executions kept in memory for lookups...
CLOSED_MEMORY = 300.0  # seconds a closed connection id is remembered (requests in flight)
RECENT_OUTPUT_BYTES = 256 << 20  # ...as long as their outputs add up to no more than this
# Older ones are answered from the history store; running ones are never evicted.


class SessionManager:
    """Knows every session; knows nothing of sockets or of where kernels run."""

    def __init__(self, settings: Settings, languages: LanguageTable, provider: KernelProvider) -> None:
        self.settings = settings
        self.languages = languages
        self.provider = provider
        self.sessions: dict[str, Session] = {}
        self.executions: OrderedDict[str, Execution] = OrderedDict()
        self._finished_bytes = 0  # output bytes of the finished executions in the registry
        self.session_listeners: list[SessionListener] = []
        self._culler: asyncio.Task[None] | None = None
        self._closing = False
        self._closed_connections: dict[str, float] = {}  # id -> when (kept CLOSED_MEMORY s)
        # Predicates that spare an idle named session from culling (e.g. an attached client).
        self.keep_alive: list[Callable[[Session], bool]] = []

    # -- sessions -----------------------------------------------------------------
    def default_session_id(self, connection_id: str, language: Language) -> str:
        return f"conn-{connection_id}-{language.name.replace(':', '-')}"

    def get_or_create(self, session_id: str | None, language_name: str, connection_id: str | None,
                      sandbox: SessionSandbox | None = None, client: str | None = None) -> Session:
        """The named session (created on first use) or the connection's default one.

        ``client`` is who a new session counts against (default: the connection); REST names
        its caller's address, having no connection that outlives a request."""
        if self._closing:
            raise CapacityError("The server is shutting down")
        language = self.languages.resolve(language_name)
        named = session_id is not None
        if session_id is None:
            if connection_id is None:
                raise SessionNotFound("An unnamed execution needs a connection or a session_id")
            if connection_id in self._closed_connections:
                # A request still in flight when its connection closed: a default session
                # made now would never be shut down.
                raise SessionNotFound("The connection that owns this default session has closed")
            session_id = self.default_session_id(connection_id, language)
        session = self.sessions.get(session_id)
        if session is not None:
            if session.closed:
                # Still stopping its kernel: a new one under this id would share its workspace.
                raise SessionNotFound(f"Session {session_id!r} is shutting down", session_id=session_id)
            if session.language.kernel_name != language.kernel_name:
                raise SessionConflict(
                    f"Session {session_id!r} runs {session.language.name}, not {language.name}",
                    session_id=session_id,
                )
            return session
        client = client or connection_id
        memory = capacity.session_memory(self.settings, self.provider.memory_limit(sandbox))
        capacity.admit_session(self.sessions.values(), self.settings, client, memory)
        session = Session(
            session_id,
            language,
            self.provider.create(language.kernel_name, session_id=session_id, sandbox=sandbox),
            named=named,
            owner=connection_id,
            client=client,
            memory=memory,
            interrupt_grace=self.settings.interrupt_grace,
            keepalive_interval=self.settings.keepalive_interval,
        )
        session.listeners.extend(self.session_listeners)
        self.sessions[session_id] = session
        return session

    def get(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None or session.closed:  # a closing one is only kept to reserve its id
            raise SessionNotFound(f"No session {session_id!r}", session_id=session_id)
        return session

    async def shutdown_session(self, session_id: str, reason: str = "requested") -> None:
        session = self.sessions.get(session_id)
        if session is None or session.closed:
            raise SessionNotFound(f"No session {session_id!r}", session_id=session_id)
        try:
            await session.shutdown(reason)
        finally:
            # The id is free once the kernel is gone, not before (see get_or_create).
            if self.sessions.get(session_id) is session:
                del self.sessions[session_id]

    async def close_connection(self, connection_id: str) -> None:
        """A connection went away: its default sessions go with it (running work is interrupted)."""
        now = time.monotonic()
        self._closed_connections[connection_id] = now
        for stale in [c for c, t in self._closed_connections.items() if now - t > CLOSED_MEMORY]:
            del self._closed_connections[stale]
        mine = [s for s in self.sessions.values() if not s.named and s.owner == connection_id]
        await asyncio.gather(
            *(self.shutdown_session(s.id, "connection closed") for s in mine), return_exceptions=True
        )

    def list_sessions(self) -> list[dict[str, Any]]:
        return [s.describe() for s in self.sessions.values() if not s.closed]

    # -- executions ---------------------------------------------------------------
    async def execute(
        self, request: ExecuteRequest, connection_id: str | None, listeners: list[Listener],
        client: str | None = None, created: Callable[[Execution], None] | None = None,
    ) -> Execution:
        session = self.get_or_create(request.session_id, request.language, connection_id,
                                     sandbox=request.config.sandbox, client=client)
        execution = Execution(request, session.id, session.language.name)
        try:
            capacity.admit_execution(session, self.settings, execution.code_bytes)
        except QueueFull:
            self.discard_unstarted(session)
            raise
        execution.listeners.extend(listeners)
        if created is not None:
            created(execution)
        self.executions[execution.execution_id] = execution
        try:
            return await session.execute(execution)
        except BaseException:
            # It never ran (bad cwd, kernel failed to start, session gone): the caller
            # reports the error, and no "running" ghost stays behind in the registry.
            if execution.result is None:
                self.executions.pop(execution.execution_id, None)
            self.discard_unstarted(session)
            raise
        finally:
            self.finished(execution)

    def finished(self, execution: Execution) -> None:
        """Account for a finished execution kept in the registry, and prune it. The running
        total makes this O(1) per execution; summing the registry each time cost ~0.1 ms
        per execution (a tenth of the bridge's overhead) once 1000 were kept."""
        if execution.result is not None and self.executions.get(execution.execution_id) is execution:
            self._finished_bytes += execution.output_bytes
        self._prune_executions()

    def _prune_executions(self) -> None:
        """Bound the registry by count and by finished output bytes, oldest finished first.
        (Running executions are bounded by the sessions and max_output_size, and stay.)"""
        count = len(self.executions)
        doomed = []
        for execution_id, execution in self.executions.items():  # oldest first, stops early
            if count <= RECENT_EXECUTIONS and self._finished_bytes <= RECENT_OUTPUT_BYTES:
                break
            if execution.result is None:
                continue
            doomed.append(execution_id)
            count -= 1
            self._finished_bytes -= execution.output_bytes
        for execution_id in doomed:
            del self.executions[execution_id]

    def discard_unstarted(self, session: Session) -> None:
        """A session whose kernel never started (refused by the sandbox, no such binary...)
        and that nobody waits on leaves the registry rather than sit there kernel-less."""
        if session.state == "new" and session.queued == 0 and self.sessions.get(session.id) is session:
            del self.sessions[session.id]

    def get_execution(self, execution_id: str) -> Execution:
        execution = self.executions.get(execution_id)
        if execution is None:
            raise ExecutionNotFound(f"No execution {execution_id!r}", execution_id=execution_id)
        return execution

    # -- background and shutdown --------------------------------------------------
    def start(self) -> None:
        if self.settings.session_idle_timeout > 0 and self._culler is None:
            self._culler = asyncio.create_task(self._cull_forever())

    async def _cull_forever(self) -> None:
        interval = max(1.0, min(60.0, self.settings.session_idle_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await self.cull_idle()

    async def cull_idle(self) -> list[str]:
        """Shut down named sessions with no execution running or queued for too long."""
        limit = self.settings.session_idle_timeout
        now = time.monotonic()
        idle = [
            s.id for s in self.sessions.values()
            if s.named and s.queued == 0 and s.current is None and now - s.last_activity > limit
            and not any(keep(s) for keep in self.keep_alive)
        ]
        for session_id in idle:
            with contextlib.suppress(SessionNotFound):
                await self.shutdown_session(session_id, "idle")
        return idle

    async def shutdown(self) -> None:
        """Stop every kernel. Safe to call more than once."""
        self._closing = True
        if self._culler is not None:
            self._culler.cancel()
            self._culler = None
        sessions = list(self.sessions.values())
        self.sessions.clear()
        await asyncio.gather(*(s.shutdown("server shutdown") for s in sessions), return_exceptions=True)
        self.provider.close()
