"""REST endpoints editors need: complete/inspect/is_complete, interrupt one execution, stdin."""

from __future__ import annotations

from typing import Any

from tornado import web

from ..protocol.editor import parse_input_reply
from .rest import ApiHandler, route_id

SESSION = r"/api/sessions/" + route_id("session_id")
EXECUTION = r"/api/executions/" + route_id("execution_id")


class EditorHandler(ApiHandler):
    """``POST /api/sessions/{id}/<kind>``: the body is the WebSocket message without ``type``."""

    kind = ""

    async def post(self, session_id: str) -> None:
        params = {**self.json_body(), "session_id": session_id}
        self.finish(await self.service.editor(self.kind, params, None))


class CompleteHandler(EditorHandler):
    kind = "complete"


class InspectHandler(EditorHandler):
    kind = "inspect"


class IsCompleteHandler(EditorHandler):
    kind = "is_complete"


class ExecutionInterruptHandler(ApiHandler):
    async def post(self, execution_id: str) -> None:
        self.finish(await self.service.interrupt(execution_id=execution_id))


class ExecutionInputHandler(ApiHandler):
    """``POST /api/executions/{id}/input`` ``{"value": "..."}``: answers its input_request."""

    def post(self, execution_id: str) -> None:
        _, value = parse_input_reply({**self.json_body(), "execution_id": execution_id})
        self.finish(self.service.send_input(execution_id, value))


def routes(deps: dict[str, Any]) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    """Described in ``openapi.document()`` next to the other REST routes."""
    table: list[tuple[str, type[web.RequestHandler]]] = [
        (SESSION + r"/complete", CompleteHandler),
        (SESSION + r"/inspect", InspectHandler),
        (SESSION + r"/is_complete", IsCompleteHandler),
        (EXECUTION + r"/interrupt", ExecutionInterruptHandler),
        (EXECUTION + r"/input", ExecutionInputHandler),
    ]
    return [(pattern, handler, deps) for pattern, handler in table]
