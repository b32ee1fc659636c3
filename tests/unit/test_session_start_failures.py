"""A kernel that fails to start or restart: the session says why (kernel_start_failed), every
answer carries its request's id, and the next request starts a fresh kernel (no real kernel)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from icpy_kernels.errors import KernelStartError
from icpy_kernels.server.connection import Connection

from .fakekernel import cell


def request(code: str = "1", session_id: str = "s1", **config: Any) -> Any:
    return {"code": code, "session_id": session_id, "config": config}


async def run(service: Any, code: str = "1", session_id: str = "s1", **config: Any) -> dict[str, Any]:
    execution = await service.execute(service.parse_execute(request(code, session_id, **config)), None, [])
    return execution.result


@pytest.mark.asyncio
async def test_a_start_that_fails_once_says_why_and_the_next_request_starts_afresh(fake_service):
    service, provider = fake_service
    await service.create_session({"session_id": "warm"})  # the provider's first kernel
    for setup in ("fail_starts", "fail_ready"):  # before the kernel runs, or while connecting
        session = service.manager.get_or_create(f"s-{setup}", "python", None)
        setattr(session.handle, setup, 1)
        with pytest.raises(KernelStartError) as info:
            await run(service, session_id=session.id)
        assert info.value.code == "kernel_start_failed"
        assert "connection file is unreadable" in info.value.message or "in time" in info.value.message
        assert (await run(service, session_id=session.id))["status"] == "completed"


@pytest.mark.asyncio
async def test_a_failed_restart_says_why_then_the_session_starts_a_fresh_kernel(fake_service):
    service, provider = fake_service
    assert (await run(service))["status"] == "completed"
    kernel = provider.kernels[0]
    kernel.fail_restarts = 1
    with pytest.raises(KernelStartError) as info:
        await service.restart_session("s1")
    assert "failed to restart: connection file is unreadable" in info.value.message
    assert info.value.details["session_id"] == "s1"
    assert service.get_session("s1")["state"] == "new"
    # Not internal_error from then on: a fresh start, and the session works again.
    assert (await run(service))["status"] == "completed"
    assert kernel.starts == 2 and service.get_session("s1")["state"] == "idle"
    await service.restart_session("s1")
    assert service.get_session("s1")["restarts"] == 1


@pytest.mark.asyncio
async def test_a_kernel_that_dies_and_cannot_restart_ends_its_execution_and_recovers(fake_service):
    service, provider = fake_service
    await run(service)
    kernel = provider.kernels[0]
    kernel.script = lambda code: []  # it never answers...
    kernel.fail_restarts = 1

    async def die() -> None:
        await asyncio.sleep(0.1)
        kernel.alive = False  # ...and dies

    asyncio.ensure_future(die())
    result = await run(service, "dies")
    assert result["status"] == "failed" and result["kernel_restarted"] is True
    assert [e.split(":")[0] for e in result["errors"]] == ["KernelRestartFailed"]
    assert "failed to restart" in result["error"]["evalue"]
    kernel.script = lambda code: cell()
    assert (await run(service))["status"] == "completed"


@pytest.mark.asyncio
async def test_a_failed_restart_answers_with_the_request_id(fake_service):
    service, provider = fake_service
    await run(service)
    sent: list[dict[str, Any]] = []
    connection = Connection(service, sent.append)
    provider.kernels[0].fail_restarts = 1
    await connection.on_frame('{"type": "restart_session", "session_id": "s1", "request_id": "r1"}')
    await asyncio.gather(*connection.tasks)
    assert [(m["type"], m.get("code"), m.get("request_id")) for m in sent] == [
        ("error", "kernel_start_failed", "r1")]
    # A bug in a handler (here: a restart raising something unexpected) still echoes it.
    async def broken(reason: str = "requested") -> None:
        raise RuntimeError("boom")
    service.manager.get("s1").restart = broken
    sent.clear()
    await connection.on_frame('{"type": "restart_session", "session_id": "s1", "request_id": 7}')
    await asyncio.gather(*connection.tasks)
    assert [(m["type"], m.get("code"), m.get("request_id")) for m in sent] == [("error", "internal_error", 7)]
    # Errors raised before any task (an unknown type) echo it too.
    sent.clear()
    await connection.on_frame('{"type": "nope", "request_id": "r3"}')
    assert sent[0]["code"] == "unknown_type" and sent[0]["request_id"] == "r3"
    await connection.close()
