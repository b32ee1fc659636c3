"""One client's request must not freeze, bloat or crash the server (issue 10): a flood of
subscription patterns, an endless JSON-RPC batch, a frame nested too deep to parse. Each attack
runs with an innocent client alongside, whose ping and ``1+1`` must keep being answered promptly."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest

from .harness import Client, ThreadedServer
from .test_rest import error_of, fetch

pytestmark = pytest.mark.gen_test(timeout=120)

PING_BUDGET = 1.0  # seconds; before the fixes pings waited 12-25 s
EXEC_BUDGET = 3.0
DEEP = "[" * 100_000 + "]" * 100_000  # 200 KB: under the frame limit, far over the parser's stack


@pytest.fixture(scope="module")
def innocent_session():
    return "innocent-" + uuid.uuid4().hex[:8]


async def innocent_answers(client: Client, session: str) -> tuple[float, float]:
    """A ping and ``1+1`` in the bystander's own session, each within its budget."""
    started = time.monotonic()
    await client.send({"type": "ping"})
    await client.wait_for(lambda m: m.get("type") == "pong", 30)
    ping = time.monotonic() - started
    started = time.monotonic()
    _, result = await client.execute("1+1", session_id=session, timeout=60)
    run = time.monotonic() - started
    assert result.get("output") == ["2"], result
    print(f"innocent: ping {ping * 1000:.0f} ms, 1+1 {run * 1000:.0f} ms")
    assert ping < PING_BUDGET, f"ping took {ping:.2f}s"
    assert run < EXEC_BUDGET, f"1+1 took {run:.2f}s"
    return ping, run


async def alongside(attack: Any, innocent: Client, session: str) -> Any:
    """Run ``attack`` while the bystander keeps asking; return what the attack returned."""
    task = asyncio.ensure_future(attack)
    await innocent_answers(innocent, session)
    while not task.done():
        await innocent_answers(innocent, session)
    await innocent_answers(innocent, session)
    return task.result()


# -- item 2: subscription patterns ------------------------------------------------------------
async def test_subscription_patterns_are_capped_and_cost_nothing_to_others(server: ThreadedServer,
                                                                           innocent_session):
    limit = server.settings.max_subscriptions_per_connection
    total = server.settings.max_subscriptions
    innocent = await Client.connect(server.url())
    await innocent_answers(innocent, innocent_session)
    attacker = await Client.connect(server.url())

    # 100,000 patterns in one request (the attack): refused at once, over every transport.
    flood = [f"code_execution.{i}.*[!x]" for i in range(100_000)]
    started = time.monotonic()
    reply = await attacker.ask({"type": "subscribe", "topics": flood}, timeout=60)
    print(f"subscribe with 100000 patterns answered in {time.monotonic() - started:.2f}s")
    assert reply["type"] == "error" and reply["code"] == "validation_error", reply
    assert reply["field"] == "topics" and reply["limit"] == limit
    response = await attacker.rpc("events.subscribe", {"topics": flood[:limit + 1]})
    assert response["error"]["code"] == -32602 and response["error"]["data"]["limit"] == limit
    query = "&".join(f"topics=a.{i}.*" for i in range(limit + 1))
    code, body, _ = await fetch(server, "/api/events?" + query)
    assert code == 400 and error_of(body)["field"] == "topics"

    # Up to the cap is fine; one more pattern, in a later request, is not.
    reply = await attacker.ask({"type": "subscribe", "topics": flood[:limit]})
    assert reply["type"] == "subscribed" and len(reply["topics"]) == limit
    reply = await attacker.ask({"type": "subscribe", "topics": ["code_execution.*"]})
    assert reply["code"] == "validation_error" and reply["limit"] == limit
    # JSON-RPC subscriptions of the same connection count too.
    response = await attacker.rpc("events.subscribe", {"topics": ["code_execution.*"]})
    assert response["error"]["code"] == -32602

    # Other connections fill the server-wide total; past it, subscribing is a capacity error.
    others = []
    while len(others) * limit + limit < total:
        other = await Client.connect(server.url())
        patterns = [f"session.{len(others)}.{i}.*[!x]" for i in range(limit)]
        assert (await other.ask({"type": "subscribe", "topics": patterns}))["type"] == "subscribed"
        others.append(other)
    extra = await Client.connect(server.url())
    reply = await extra.ask({"type": "subscribe", "topics": [f"x.{i}.*" for i in range(limit)]})
    assert reply["code"] == "capacity" and reply["limit"] == total, reply

    # With the server full of wildcard patterns, and a client churning its subscription (each
    # change used to throw away the per-topic cache), the bystander sees no difference.
    async def churn() -> None:
        for i in range(200):
            await attacker.send({"type": "unsubscribe", "topics": [flood[i]]})
            await attacker.send({"type": "subscribe", "topics": [f"code_execution.churn{i}*"]})
        await attacker.send({"type": "ping"})
        await attacker.wait_for(lambda m: m.get("type") == "pong", 60)
        assert not [m for m in attacker.buffer if m.get("type") == "error"], attacker.buffer[-3:]

    await alongside(churn(), innocent, innocent_session)
    for client in (attacker, extra, *others):
        client.close()
    innocent.close()


# -- item 3: JSON-RPC batches -----------------------------------------------------------------
async def test_an_overlong_batch_gets_one_error_and_a_full_one_holds_nobody_up(server: ThreadedServer,
                                                                               innocent_session):
    limit = server.settings.max_batch_size
    innocent = await Client.connect(server.url())
    await innocent_answers(innocent, innocent_session)
    attacker = await Client.connect(server.url())

    def batch(n: int, tag: str) -> str:
        return json.dumps([{"jsonrpc": "2.0", "id": f"{tag}{i}", "method": "session.list"} for i in range(n)])

    # 10,000 entries (the 600 KB batch): one -32600 error, not 10,000 answers.
    big = batch(10_000, "b")
    started = time.monotonic()
    await attacker.send(big)
    answer = await attacker.wait_for(lambda m: "jsonrpc" in m or isinstance(m, list), 60)
    print(f"batch of 10000 ({len(big) // 1024} KB) answered in {time.monotonic() - started:.2f}s")
    assert answer["id"] is None and answer["error"]["code"] == -32600, str(answer)[:300]
    assert str(limit) in answer["error"]["message"]

    # A full batch, sent again and again, while the bystander asks.
    async def full_batches() -> int:
        answered = 0
        for round_ in range(20):
            await attacker.send(batch(limit, f"r{round_}-"))
            responses = await attacker.wait_for(lambda m: isinstance(m, list), 60)
            answered += len(responses)
        return answered

    assert await alongside(full_batches(), innocent, innocent_session) == 20 * limit
    attacker.close()
    innocent.close()


# -- item 4: JSON nested too deep to parse ----------------------------------------------------
async def test_a_frame_nested_too_deep_is_invalid_json_and_the_connection_lives(server: ThreadedServer,
                                                                                innocent_session):
    innocent = await Client.connect(server.url())
    await innocent_answers(innocent, innocent_session)
    attacker = await Client.connect(server.url())

    await attacker.send(DEEP)  # a bare array: the JSON-RPC batch path sees it first
    reply = await attacker.next(30)
    assert reply["type"] == "error" and reply["code"] == "invalid_json", reply
    await attacker.send('{"type": "ping", "x": ' + DEEP + "}")
    reply = await attacker.next(30)
    assert reply["type"] == "error" and reply["code"] == "invalid_json", reply
    await attacker.send('{"jsonrpc": "2.0", "id": 1, "method": "session.list", "params": ' + DEEP + "}")
    reply = await attacker.next(30)
    assert reply["id"] is None and reply["error"]["code"] == -32700, reply
    # The same connection still answers, and so does the bystander.
    await attacker.send({"type": "ping"})
    assert (await attacker.next(30))["type"] == "pong"
    await innocent_answers(innocent, innocent_session)

    # REST: a 400 invalid_json, not a 500.
    for path in ("/api/execute", "/api/sessions"):
        code, body, _ = await fetch(server, path, "POST", DEEP)
        assert code == 400 and error_of(body)["code"] == "invalid_json", (path, code, body)
    code, body, _ = await fetch(server, "/api/executions/nope/input", "POST", '{"value": ' + DEEP + "}")
    assert code == 400 and error_of(body)["code"] == "invalid_json", (code, body)
    await innocent_answers(innocent, innocent_session)
    await innocent.ask({"type": "shutdown_session", "session_id": innocent_session})
    attacker.close()
    innocent.close()
