"""The operations every way in (WebSocket, JSON-RPC, REST, CLI) offers, over one session manager.

Transports parse and authorize, then call these; there is no second execution path.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from .config import Settings
from .errors import ExecutionNotFound, IcpyError, SessionConflict, ValidationError
from .events.hub import Hub
from .protocol import events
from .protocol.editor import editor_reply, parse_editor
from .protocol.messages import ExecuteRequest, optional_id, parse_execute
from .protocol.sharing import HistoryQuery
from .provisioning.options import parse_session_sandbox
from .runtime.execution import Execution, Listener
from .runtime.manager import SessionManager
from .runtime.versions import LanguageVersions

EDITOR_BUSY_WAIT = 2.0  # an editor's keystroke waits no longer than this on a busy kernel


class Service:
    def __init__(self, manager: SessionManager, hub: Hub | None = None) -> None:
        self.manager = manager
        self.settings: Settings = manager.settings
        self._language_versions = LanguageVersions()
        # Broadcast, attached clients, resume logs and history (no store: nothing persists).
        self.hub = hub or Hub()
        manager.session_listeners.append(self.hub.on_session_event)
        # A session someone is attached to is in use, even with no execution for a while.
        manager.keep_alive.append(lambda session: bool(self.hub.attached.get(session.id)))

    # -- executions ---------------------------------------------------------------
    def parse_execute(self, params: dict[str, Any]) -> ExecuteRequest:
        """Validate and resolve the language before anything runs.

        Errors about an execute always carry ``execution_id`` (null when none was sent).
        """
        try:
            request = parse_execute(
                params,
                default_timeout=self.settings.default_timeout,
                max_timeout=self.settings.max_timeout,
                max_output_size=self.settings.max_output_size,
            )
        except IcpyError as exc:
            sent = params.get("execution_id")
            exc.details["execution_id"] = sent if isinstance(sent, str) else None
            raise
        try:
            self.manager.languages.resolve(request.language)
        except IcpyError as exc:
            exc.details["execution_id"] = request.execution_id
            raise
        return request

    async def execute(self, request: ExecuteRequest, connection_id: str | None, listeners: list[Listener],
                      client: str | None = None) -> Execution:
        """Run code, unless an execution with the client's ``execution_id`` already exists
        (running, finished, or in the history): then follow that one, so a retry never
        runs the code twice. ``client``: who a new session counts against (default: the
        connection)."""
        if request.client_execution_id:
            existing = await self._existing(request, listeners)
            if existing is not None:
                return existing
        track = self.hub.track(request, connection_id)

        def created(execution: Execution) -> None:  # late output revises the stored result
            self.hub.result_source(execution.execution_id, execution.snapshot)

        try:
            return await self.manager.execute(request, connection_id, [track, *listeners], client, created)
        except BaseException:
            if request.execution_id not in self.manager.executions:  # it never ran
                self.hub.never_ran(request.execution_id)
            raise

    async def interrupt(self, *, execution_id: str | None = None, session_id: str | None = None) -> dict[str, Any]:
        if execution_id is not None:
            execution = self.manager.get_execution(execution_id)
            session_id = execution.session_id
            if execution.result is not None:  # finished: its session may be gone by now
                return {"session_id": session_id, "execution_id": execution_id, "interrupted": False}
            session = self.manager.get(session_id)
            if session.current is not execution:
                # Still queued (or starting its kernel): it will end as interrupted, unrun.
                queued = execution.result is None and not execution.interrupt_requested
                execution.interrupt_requested = True
                return {"session_id": session_id, "execution_id": execution_id, "interrupted": queued}
        elif session_id is not None:
            session = self.manager.get(session_id)
        else:
            raise ValidationError("interrupt needs 'execution_id' or 'session_id'", field="execution_id")
        running = session.current.execution_id if session.current else None
        interrupted = await session.interrupt()
        return {"session_id": session.id, "execution_id": running, "interrupted": interrupted}

    def send_input(self, execution_id: str, value: str) -> dict[str, Any]:
        """Answer the ``input_request`` of a running execution (from any transport)."""
        execution = self.manager.get_execution(execution_id)
        self.manager.get(execution.session_id).answer_input(execution, value)
        return {"execution_id": execution_id, "session_id": execution.session_id, "accepted": True}

    # -- editor requests ----------------------------------------------------------
    async def editor(self, kind: str, params: dict[str, Any], connection_id: str | None) -> dict[str, Any]:
        """complete / inspect / is_complete; ``busy: true`` with an empty answer when the
        kernel is running code for longer than ``EDITOR_BUSY_WAIT``."""
        request = parse_editor(kind, params)
        if request.session_id is not None:
            session = self.manager.get(request.session_id)
            if request.language is not None:
                wanted = self.manager.languages.resolve(request.language)
                if wanted.kernel_name != session.language.kernel_name:
                    raise SessionConflict(
                        f"Session {session.id!r} runs {session.language.name}, not {wanted.name}",
                        session_id=session.id)
        else:
            session = self.manager.get_or_create(None, request.language or "python", connection_id)

        def send() -> str:
            client = session.client
            if kind == "complete":
                return client.complete(request.code, request.cursor_pos)
            if kind == "inspect":
                return client.inspect(request.code, request.cursor_pos, request.detail_level)
            return client.is_complete(request.code)

        content = await session.editor_request(send, EDITOR_BUSY_WAIT)
        return {"session_id": session.id, **editor_reply(request, content)}

    # -- sessions -----------------------------------------------------------------
    async def create_session(self, params: dict[str, Any], client: str | None = None) -> dict[str, Any]:
        return (await self.open_session(params, client))[0]

    async def open_session(self, params: dict[str, Any], client: str | None = None) -> tuple[dict[str, Any], bool]:
        """The named session, started, and whether this call created it (REST answers 201
        only then); an existing one of another language is a ``SessionConflict``."""
        session_id = optional_id(params, "session_id") or f"s-{uuid.uuid4().hex[:12]}"
        language = params.get("language", "python")
        if not isinstance(language, str) or not language:
            raise ValidationError("'language' must be a non-empty string", field="language")
        config = params.get("config") or {}
        if not isinstance(config, dict):
            raise ValidationError("'config' must be an object", field="config")
        existed = session_id in self.manager.sessions  # no await before get_or_create: no race
        session = self.manager.get_or_create(session_id, language, None,
                                             sandbox=parse_session_sandbox(config), client=client)
        try:
            await session.ensure_started()
        except BaseException:
            self.manager.discard_unstarted(session)
            raise
        return session.describe(), not existed

    def list_sessions(self) -> list[dict[str, Any]]:
        return self.manager.list_sessions()

    def get_session(self, session_id: str) -> dict[str, Any]:
        return self.manager.get(session_id).describe()

    async def restart_session(self, session_id: str) -> dict[str, Any]:
        session = self.manager.get(session_id)
        await session.restart("requested")
        return session.describe()

    async def interrupt_session(self, session_id: str) -> dict[str, Any]:
        return await self.interrupt(session_id=session_id)

    async def shutdown_session(self, session_id: str) -> dict[str, Any]:
        await self.manager.shutdown_session(session_id)
        return {"session_id": session_id, "shutdown": True}

    def languages(self) -> list[dict[str, Any]]:
        return self.manager.languages.describe()

    async def describe_languages(self) -> list[dict[str, Any]]:
        """``languages()`` plus each one's ``version``: what its kernel's ``kernel_info`` says
        (``language_info.version``), from the kernelspec or its interpreter until one has run."""
        versions = self._language_versions
        for session in list(self.manager.sessions.values()):
            kernel = session.language.kernel_name
            if versions.reported(kernel) or session.state != "idle" or session.client is None:
                continue
            with contextlib.suppress(Exception):  # a busy or dying kernel: the probe's answer stays
                reply = await session.shell.request(session.client.kernel_info, wait=1.0)
                versions.known(kernel, str(reply["content"]["language_info"]["version"]))
        ksm = self.manager.languages.ksm
        languages = self.languages()
        found = await asyncio.gather(*(versions.get(lang["kernelspec"], ksm.get_kernel_spec(lang["kernelspec"]))
                                       for lang in languages))
        return [{**lang, "version": version} for lang, version in zip(languages, found, strict=True)]

    # -- history, resume, attach (one path for every transport) -------------------------
    async def _existing(self, request: ExecuteRequest, listeners: list[Listener]) -> Execution | None:
        eid = request.execution_id
        if eid not in self.hub.feeds and eid not in self.manager.executions:
            store = self.hub.store
            if store is None or not store.might_have(eid) or await store.get_result(eid) is None:
                # Checked again after the await: a concurrent retry may have started it.
                if eid not in self.hub.feeds and eid not in self.manager.executions:
                    return None  # new: the caller tracks it before its next await

        def fan(event: dict[str, Any]) -> None:
            for listener in listeners:
                listener(event)

        result = await self.follow(eid, fan, 0, started=True)
        if result is None:  # the first attempt never ran (bad cwd, no kernel): run it now...
            # ...unless a concurrent retry already does.
            return await self._existing(request, listeners) if eid in self.hub.feeds else None
        known = self.manager.executions.get(eid)
        if known is not None and known.result is not None:
            return known
        restored = Execution(request, result["session_id"], result["language"])
        restored.result, restored.status = result, result["status"]
        restored.done.set()
        return restored

    async def follow(self, execution_id: str, listener: Listener, after_seq: int = 0, *,
                     started: bool = False, ack: bool = False) -> dict[str, Any] | None:
        """Tell ``listener`` every update after ``after_seq``, then live ones, then the result
        (which is also returned); None when the execution is unknown.

        A running execution is replayed from memory and followed in the same step; a finished
        one is replayed from its stored update log, which holds the very same messages.
        """
        if ack and execution_id in self.hub.feeds:
            feed = self.hub.feeds[execution_id]
            status = feed.result["status"] if feed.result else "running"
            listener(events.resumed(execution_id, feed.session_id, status, after_seq))
        feed = self.hub.watch(execution_id, listener, after_seq, started=started)
        if feed is not None:
            await feed.ended.wait()
            return feed.result
        result, updates = None, None
        if self.hub.store is not None:
            result = await self.hub.store.get_result(execution_id)
            updates = await self.hub.store.get_updates(execution_id)
        if result is None:
            known = self.manager.executions.get(execution_id)
            result = known.result if known is not None else None
        if result is None:
            if execution_id in self.hub.feeds:  # it started while we looked
                return await self.follow(execution_id, listener, after_seq, started=started, ack=ack)
            return None
        if ack:
            listener(events.resumed(execution_id, result["session_id"], result["status"], after_seq))
        if started:
            listener(events.execution_started(execution_id, result["session_id"], result["language"]))
        for event in updates or ():
            if event["seq"] > after_seq:
                listener(event)
        listener(result)
        return result

    async def resume(self, execution_id: str, after_seq: int, listener: Listener) -> dict[str, Any]:
        """``resumed``, the updates after ``after_seq``, live updates, then the result."""
        result = await self.follow(execution_id, listener, after_seq, ack=True)
        if result is None:
            raise ExecutionNotFound(f"No execution {execution_id!r}", execution_id=execution_id)
        return result

    async def get_result(self, execution_id: str) -> dict[str, Any]:
        """The ``execution_result`` (memory, then the history), or a ``running`` snapshot."""
        known = self.manager.executions.get(execution_id)
        if known is not None:
            return known.snapshot()
        stored = await self.hub.store.get_result(execution_id) if self.hub.store else None
        if stored is None:
            raise ExecutionNotFound(f"No execution {execution_id!r}", execution_id=execution_id)
        return stored

    async def history(self, query: HistoryQuery) -> dict[str, Any]:
        """Newest first; ``next_before`` is the cursor for the next (older) page."""
        if self.hub.store is None:
            return {"entries": [], "next_before": None}
        entries = await self.hub.store.list(session_id=query.session_id, language=query.language,
                                            limit=query.limit, before=query.before)
        more = len(entries) == query.limit
        return {"entries": entries, "next_before": entries[-1]["execution_id"] if more else None}

    def attach(self, session_id: str, connection_id: str, listener: Listener) -> dict[str, Any]:
        """Follow another connection's session: its executions' events, live."""
        session = self.manager.get(session_id)
        current = session.current.execution_id if session.current else None
        self.hub.attach(session_id, connection_id, listener, current)
        return {"session_id": session_id, "session": session.describe()}

    def detach(self, session_id: str, connection_id: str) -> dict[str, Any]:
        return {"session_id": session_id, "detached": self.hub.detach(session_id, connection_id)}
