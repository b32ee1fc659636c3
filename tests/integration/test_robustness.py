"""Races and error paths of the core against real kernels through the real server: shutdown,
restart and interrupt meeting a starting kernel, a queued execution or a finishing one; error
events that must name their execution; memory that must not outlive a stored result."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from icpy_kernels.events.hub import Feed

from .harness import Client, ThreadedServer


def sid() -> str:
    return "rb-" + uuid.uuid4().hex[:10]


def of(execution_id: str, *kinds: str):
    def match(m: dict[str, Any]) -> bool:
        return m.get("execution_id") == execution_id and (not kinds or m["type"] in kinds)
    return match


async def request(client: Client, message: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    rid = "r-" + uuid.uuid4().hex[:8]
    await client.send({**message, "request_id": rid})
    return await client.wait_for(lambda m: m.get("request_id") == rid, timeout)


async def kernel_alive(server, session) -> bool:
    async def alive() -> bool:
        km = session.handle.km
        return bool(km.has_kernel) and await km.is_alive()
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(alive(), server.loop))


@pytest.mark.gen_test(timeout=90)
async def test_shutdown_while_the_kernel_starts_leaves_no_kernel_and_runs_nothing(server):
    """The session's first execution is starting its kernel when the session is shut down:
    the kernel must not survive its session, and the queued code must not run in it."""
    client = await Client.connect(server.url())
    session_id = sid()
    await client.send({"type": "execute", "code": "print('ran')", "session_id": session_id,
                       "execution_id": "rb-start-1"})
    for _ in range(500):  # until the session exists (its kernel is being started)
        if session_id in server.manager.sessions:
            break
        await asyncio.sleep(0.002)
    session = server.manager.sessions[session_id]
    reply = await request(client, {"type": "shutdown_session", "session_id": session_id})
    assert reply["type"] == "shutdown_session_reply"
    answer = await client.wait_for(of("rb-start-1", "execution_result", "error"), 60)
    # A clear end: an error naming the execution, or a result that is not a normal run.
    if answer["type"] == "error":
        assert answer["code"] == "session_not_found"
    else:
        assert answer["status"] == "failed" and answer["output"] == []
    await asyncio.sleep(0.5)
    assert session.closed
    assert not await kernel_alive(server, session)
    client.close()


SLOW_SILENT = ("import time\n"
               "get_ipython().events.register('pre_execute', lambda: time.sleep(1.5))\n")


@pytest.mark.gen_test(timeout=90)
@pytest.mark.parametrize("operation", ["restart_session", "shutdown_session"])
async def test_restart_or_shutdown_during_the_context_step_ends_the_execution(server, operation):
    """The execution's working_directory/environment step runs in the kernel (here slowed by a
    pre_execute hook) when the session is restarted or shut down: the client still gets an
    answer naming its execution, never an anonymous internal error."""
    client = await Client.connect(server.url())
    session_id = sid()
    _, r = await client.execute(SLOW_SILENT, session_id=session_id)
    assert r.get("status") == "completed", r
    eid = f"rb-ctx-{operation}"
    await client.send({"type": "execute_streaming", "code": "print('ran')", "session_id": session_id,
                       "execution_id": eid, "config": {"environment": {"RB_VAR": "1"}}})
    await asyncio.sleep(0.6)  # the context step is in the kernel's pre_execute sleep
    reply = await request(client, {"type": operation, "session_id": session_id})
    assert reply["type"] == f"{operation}_reply", reply
    answer = await client.wait_for(of(eid, "execution_result", "error"), 30)
    if operation == "shutdown_session":
        assert answer["type"] == "error" and answer["code"] == "session_not_found"
    else:
        assert answer["type"] == "execution_result"
        assert answer["status"] == "failed" and answer["kernel_restarted"] is True
        assert answer["error"]["ename"] == "SessionRestarted" and answer["output"] == []
        _, r = await client.execute("print('after')", session_id=session_id)
        assert r["status"] == "completed" and r["output"] == ["after"]
        await request(client, {"type": "shutdown_session", "session_id": session_id})
    assert not [m for m in client.buffer if m["type"] == "error" and m.get("execution_id") is None]
    client.close()


@pytest.mark.gen_test(timeout=90)
async def test_update_log_is_not_kept_once_the_result_is_stored(server):
    """The hub keeps an execution's update log for resume until its result is in the history;
    after that only the history holds it. The recent-executions registry must not keep it (nor
    the connection that ran it) alive through the execution's listeners."""
    client = await Client.connect(server.url())
    session_id = sid()
    eid = "rb-memory-1"
    _, r = await client.execute("for i in range(300): print(i, flush=True)", streaming=True,
                                session_id=session_id, execution_id=eid)
    assert r["status"] == "completed"
    hub = server.server.service.hub
    deadline = time.monotonic() + 10
    while eid in hub.feeds and time.monotonic() < deadline:  # noqa: ASYNC110 (another thread's dict)
        await asyncio.sleep(0.05)
    assert eid not in hub.feeds  # stored
    assert eid in server.manager.executions  # still answered from memory

    async def feed_logs() -> list[int]:
        """The update log each live Feed of this execution still holds."""
        gc.collect()
        return [len(o.updates) for o in gc.get_objects() if isinstance(o, Feed) and o.execution_id == eid]

    # While late output may still come (the session's last executions) the feed lives on,
    # holding no log: the store has it.
    assert server.call(feed_logs()) in ([], [0])
    await request(client, {"type": "shutdown_session", "session_id": session_id})
    assert server.call(feed_logs()) == []  # its kernel gone, nothing keeps it
    assert eid in server.manager.executions
    client.close()


@pytest.mark.gen_test(timeout=120)
async def test_an_interrupt_that_arrives_as_the_execution_ends_spares_the_next_one(server):
    """An interrupt waits for the cell to start (ipykernel ignores an early SIGINT), then a
    moment more. If the execution ends in that moment, the signal must not land on the next
    execution of the queue (which would fail, or hang until its timeout)."""
    client = await Client.connect(server.url())
    session_id = sid()
    await client.execute("import time", session_id=session_id)
    raced = 0
    for attempt in range(5):
        a, b = f"rb-int-a{attempt}", f"rb-int-b{attempt}"
        await client.send({"type": "execute_streaming", "code": "time.sleep(0.04)", "execution_id": a,
                           "session_id": session_id})
        await client.send({"type": "execute", "code": "time.sleep(1.5); print('B')", "execution_id": b,
                           "session_id": session_id, "config": {"timeout": 15}})
        await client.wait_for(of(a, "execution_started"))
        reply = await request(client, {"type": "interrupt", "session_id": session_id})
        assert reply["type"] == "interrupt_reply"
        result = await client.wait_for(of(b, "execution_result"), 30)
        if reply["execution_id"] != a:
            continue  # the interrupt came after A had ended: B was rightly interrupted
        raced += 1
        assert (result["status"], result["output"]) == ("completed", ["B"]), result
    assert raced, "the interrupt never reached the server while A ran"
    await request(client, {"type": "shutdown_session", "session_id": session_id})
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_interrupting_a_finished_execution_of_a_closed_session_answers_false(server):
    """docs/protocol.md: interrupting an execution that already finished answers
    ``interrupted: false`` — also when its session has since been shut down."""
    client = await Client.connect(server.url())
    session_id = sid()
    _, r = await client.execute("1", session_id=session_id, execution_id="rb-int-done")
    assert r["status"] == "completed"
    await request(client, {"type": "shutdown_session", "session_id": session_id})
    reply = await request(client, {"type": "interrupt", "execution_id": "rb-int-done"})
    assert reply["type"] == "interrupt_reply", reply
    assert (reply["execution_id"], reply["session_id"], reply["interrupted"]) == \
        ("rb-int-done", session_id, False)
    client.close()



@pytest.mark.gen_test(timeout=90)
async def test_a_kernel_that_dies_while_idle_is_replaced_for_the_next_execution(server):
    client = await Client.connect(server.url())
    session_id = sid()
    _, r = await client.execute("import os, threading\nthreading.Timer(0.3, os._exit, (1,)).start()",
                                session_id=session_id)
    assert r["status"] == "completed"
    await asyncio.sleep(1.5)  # the kernel is gone, nothing running
    events, r = await client.execute("print('again')", session_id=session_id, streaming=True)
    assert (r["status"], r["output"]) == ("completed", ["again"]), r
    assert server.sessions()[session_id]["restarts"] == 1
    await request(client, {"type": "shutdown_session", "session_id": session_id})
    client.close()


@pytest.mark.gen_test(timeout=90)
async def test_the_same_execution_id_twice_at_once_runs_the_code_once(server):
    one = await Client.connect(server.url())
    two = await Client.connect(server.url())
    session_id = sid()
    code = "import time\nruns = globals().get('runs', 0) + 1\ntime.sleep(0.5)\nprint(runs)"
    message = {"type": "execute_streaming", "code": code, "session_id": session_id, "execution_id": "rb-twice"}
    await asyncio.gather(one.send(message), two.send(message))
    r1 = await one.wait_for(of("rb-twice", "execution_result", "error"))
    r2 = await two.wait_for(of("rb-twice", "execution_result", "error"))
    assert r1["type"] == r2["type"] == "execution_result"
    assert r1["output"] == r2["output"] == ["1"]
    for client in (one, two):  # each saw the stream once, from seq 1, without gaps
        updates = [m["seq"] for m in client.buffer if of("rb-twice", "execution_update")(m)]
        assert updates == list(range(1, len(updates) + 1)) and updates
    _, r = await one.execute("print(runs)", session_id=session_id)
    assert r["output"] == ["1"]
    await request(one, {"type": "shutdown_session", "session_id": session_id})
    one.close()
    two.close()


@pytest.mark.gen_test(timeout=90)
async def test_shutdown_with_executions_queued_ends_each_of_them_promptly(server):
    client = await Client.connect(server.url())
    session_id = sid()
    await client.execute("import time", session_id=session_id)
    ids = ["rb-q-run", "rb-q-1", "rb-q-2"]
    for eid in ids:
        await client.send({"type": "execute_streaming", "code": "time.sleep(20)", "session_id": session_id,
                           "execution_id": eid})
    await client.wait_for(of(ids[0], "execution_started"))
    start = time.monotonic()
    await request(client, {"type": "shutdown_session", "session_id": session_id})
    running = await client.wait_for(of(ids[0], "execution_result", "error"), 15)
    assert running["type"] == "execution_result" and running["status"] == "failed"
    assert running["error"]["ename"] == "SessionShutdown"
    for eid in ids[1:]:
        answer = await client.wait_for(of(eid, "execution_result", "error"), 15)
        assert answer["type"] == "error" and answer["code"] == "session_not_found", answer
        assert not [m for m in client.buffer if of(eid, "execution_started")(m)]
    assert time.monotonic() - start < 10
    client.close()


@pytest.mark.gen_test(timeout=90)
async def test_a_session_id_is_not_reused_while_its_kernel_shuts_down(server):
    """``execute`` right behind ``shutdown_session`` (same id, reply not awaited): it must not
    start a second kernel under that id while the first one is still being stopped (they
    share the session's workspace). It is refused; once the shutdown is answered the id is
    free again."""
    client = await Client.connect(server.url())
    session_id = sid()
    _, r = await client.execute("x = 1", session_id=session_id)
    assert r["status"] == "completed"
    for attempt in range(2):
        rid = f"rb-reuse-{attempt}"
        await client.send({"type": "shutdown_session", "session_id": session_id, "request_id": rid})
        await client.send({"type": "execute", "code": "print('ran')", "session_id": session_id,
                           "execution_id": f"rb-reuse-x{attempt}"})
        reply = await client.wait_for(lambda m, rid=rid: m.get("request_id") == rid)
        assert reply["type"] == "shutdown_session_reply"
        answer = await client.wait_for(of(f"rb-reuse-x{attempt}", "execution_result", "error"), 30)
        assert answer["type"] == "error" and answer["code"] == "session_not_found", answer
        assert session_id not in server.sessions()
        _, r = await client.execute("print('fresh')", session_id=session_id)
        assert (r.get("status"), r.get("output")) == ("completed", ["fresh"]), r
    await request(client, {"type": "shutdown_session", "session_id": session_id})
    client.close()


@pytest.mark.gen_test(timeout=120)
async def test_a_kernel_that_cannot_start_leaves_no_session_behind():
    """A spec whose kernel cannot start: a typed error each time, and no kernel-less session
    left in the registry (it would count against --max-sessions forever)."""
    spec_dir = Path(os.environ["JUPYTER_PATH"].split(os.pathsep)[0]) / "kernels" / "icpy-broken"
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": ["/nonexistent/icpy-no-such-binary", "-f", "{connection_file}"],
        "display_name": "broken", "language": "python"}))
    srv = ThreadedServer().start()
    try:
        client = await Client.connect(srv.url())
        for _ in range(2):
            _, r = await client.execute("1", language="kernel:icpy-broken", session_id="broken-1")
            assert r["type"] == "error" and r["code"] == "kernel_start_failed", r
            assert "broken-1" not in srv.sessions()
        _, r = await client.execute("1+1", session_id="fine-1")
        assert r["output"] == ["2"]
        client.close()
    finally:
        srv.stop()
        for f in spec_dir.iterdir():
            f.unlink()
        spec_dir.rmdir()
