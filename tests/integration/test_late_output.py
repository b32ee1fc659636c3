"""Output sent under a cell after its result (a Python thread, a JavaScript timer, a Bash
background job) reaches its client, subscribers, get_result and the history, marked late."""

from __future__ import annotations

import uuid

import pytest

from .harness import Client

LATE = {
    "python": "import threading, time\nthreading.Thread(target=lambda: (time.sleep(0.3), print('late log'))).start()\n'scheduled'",
    "javascript": "setTimeout(() => console.log('late log'), 300); 'scheduled'",
    "bash": "(sleep 0.3; echo 'late log') &\necho scheduled",
}


@pytest.mark.gen_test(timeout=120)
@pytest.mark.parametrize("language", ["python", "javascript", "bash"])
async def test_late_output_is_routed_to_its_execution(server, language):
    runner, watcher = await Client.connect(server.url()), await Client.connect(server.url())
    reply = await watcher.ask({"type": "subscribe", "topics": ["code_execution.update"]})
    assert reply["type"] == "subscribed"
    session, eid = "late-" + uuid.uuid4().hex[:8], "late-" + uuid.uuid4().hex[:8]
    events, result = await runner.execute(LATE[language], streaming=True, language=language,
                                          session_id=session, execution_id=eid)
    assert result["status"] == "completed" and "late log" not in "".join(result["output"])
    update = await runner.wait_for(lambda m: m.get("execution_id") == eid and m.get("late"), 30)
    assert update["type"] == "execution_update" and update["update"]["text"] == "late log\n"
    seen = await watcher.wait_for(lambda m: m.get("execution_id") == eid and m.get("late"), 30)
    assert seen["type"] == "code_execution_update" and seen["update"]["text"] == "late log\n"
    stored = await runner.ask({"type": "get_result", "execution_id": eid})
    assert stored["status"] == "completed" and "late log" in stored["output"]
    runner.close()
    watcher.close()
