"""The operations every way in (WebSocket, JSON-RPC, REST, CLI) offers, over one session manager.

Transports parse and authorize, then call these; there is no second execution path.
"""

from __future__ import annotations

import uuid
from typing import Any

from .config import Settings
from .errors import IcpyError, ValidationError
from .protocol.messages import ExecuteRequest, optional_id, parse_execute
from .runtime.execution import Execution, Listener
from .runtime.manager import SessionManager


class Service:
    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager
        self.settings: Settings = manager.settings

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

    async def execute(self, request: ExecuteRequest, connection_id: str | None, listeners: list[Listener]) -> Execution:
        return await self.manager.execute(request, connection_id, listeners)

    def get_execution(self, execution_id: str) -> dict[str, Any]:
        """The result of a finished execution, or a ``running`` snapshot with the output so far."""
        return self.manager.get_execution(execution_id).snapshot()

    async def interrupt(self, *, execution_id: str | None = None, session_id: str | None = None) -> dict[str, Any]:
        if execution_id is not None:
            execution = self.manager.get_execution(execution_id)
            session_id = execution.session_id
            session = self.manager.get(session_id)
            if session.current is not execution:
                return {"session_id": session_id, "execution_id": execution_id, "interrupted": False}
        elif session_id is not None:
            session = self.manager.get(session_id)
        else:
            raise ValidationError("interrupt needs 'execution_id' or 'session_id'", field="execution_id")
        running = session.current.execution_id if session.current else None
        interrupted = await session.interrupt()
        return {"session_id": session.id, "execution_id": running, "interrupted": interrupted}

    # -- sessions -----------------------------------------------------------------
    async def create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        session_id = optional_id(params, "session_id") or f"s-{uuid.uuid4().hex[:12]}"
        language = params.get("language", "python")
        if not isinstance(language, str) or not language:
            raise ValidationError("'language' must be a non-empty string", field="language")
        session = self.manager.get_or_create(session_id, language, None)
        await session.ensure_started()
        return session.describe()

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
