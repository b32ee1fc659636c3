"""JSON-RPC batches in the Dispatcher: capped in length, and never holding the loop for a whole batch."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from icpy_kernels.config import Settings
from icpy_kernels.server.rpc import Dispatcher


def dispatcher(methods: dict[str, Any], **settings: Any) -> Dispatcher:
    service = SimpleNamespace(settings=Settings(token="t", **settings))
    return Dispatcher(service, "conn", lambda message: None, asyncio.ensure_future, methods=methods)


def batch(n: int) -> list[dict[str, Any]]:
    return [{"jsonrpc": "2.0", "id": i, "method": "m"} for i in range(n)]


async def one(call: Any, params: dict[str, Any]) -> int:
    return 1


@pytest.mark.asyncio
async def test_a_batch_over_the_cap_gets_one_invalid_request_error():
    rpc = dispatcher({"m": one}, max_batch_size=5)
    answer = await rpc.answer(batch(10_000))
    assert answer["id"] is None and answer["error"]["code"] == -32600
    assert answer["error"]["data"] == {"limit": 5} and "at most 5" in answer["error"]["message"]
    full = await rpc.answer(batch(5))
    assert sorted(r["id"] for r in full) == [0, 1, 2, 3, 4] and all(r["result"] == 1 for r in full)


@pytest.mark.asyncio
async def test_the_loop_runs_between_the_entries_of_a_batch():
    """Entries whose method never awaits (validation, a lookup) used to run back to back, all
    in one loop iteration: another client's frame waited for the whole batch."""
    ticks = 0
    seen: list[int] = []

    async def record(call: Any, params: dict[str, Any]) -> int:
        seen.append(ticks)
        return 1

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    rpc = dispatcher({"m": record}, max_batch_size=100)
    running = asyncio.ensure_future(ticker())
    await asyncio.sleep(0)
    answer = await rpc.answer(batch(20))
    running.cancel()
    assert len(answer) == 20
    assert len(set(seen)) == 20, seen  # the ticker moved between every two entries
