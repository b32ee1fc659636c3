"""The SQLite history store: rows, update logs, listing and its cursor, retention, restarts."""

from __future__ import annotations

import os
import stat
import time

import pytest

from icpy_kernels.errors import ExecutionNotFound
from icpy_kernels.history.store import HistoryStore


def row(eid: str, session: str = "s1", language: str = "python", **extra):
    return {"execution_id": eid, "session_id": session, "connection_id": "c1", "language": language,
            "code": f"print({eid!r})", **extra}


def result(eid: str, session: str = "s1", status: str = "completed", text: str = "hi\n"):
    return {"type": "execution_result", "execution_id": eid, "session_id": session,
            "language": "python", "status": status, "output": [text.strip()], "errors": [],
            "outputs": [{"output_type": "stream", "name": "stdout", "text": text}], "result": None,
            "error": None if status == "completed" else {"ename": "E", "evalue": "v", "traceback": []},
            "execution_count": 1, "execution_time": 0.01, "exit_code": 0 if status == "completed" else 1,
            "kernel_restarted": False, "truncated": False, "timestamp": "2026-01-01T00:00:00.000Z"}


def updates(eid: str, n: int):
    return [{"type": "execution_update", "execution_id": eid, "seq": i,
             "update": {"kind": "stream", "name": "stdout", "text": f"{i}\n"},
             "timestamp": "2026-01-01T00:00:00.000Z"} for i in range(1, n + 1)]


async def finished(store: HistoryStore, eid: str, n: int = 2, **kw):
    store.record_started(row(eid, **kw))
    await store.record_finished(row(eid, **kw), result(eid, kw.get("session", "s1")), updates(eid, n))


@pytest.mark.asyncio
async def test_running_then_finished_with_identical_updates():
    store = HistoryStore(":memory:")
    await store.open()
    assert not store.might_have("e1")
    store.record_started(row("e1"))
    assert store.might_have("e1")  # at once, before the writer thread has stored the row
    [entry] = await store.list()
    assert entry["status"] == "running" and entry["finished_at"] is None
    assert entry["code"] == "print('e1')" and entry["started_at"].endswith("Z")
    assert await store.get_updates("e1") is None  # not finished: resume uses memory
    ups = updates("e1", 3)
    ups[1]["update"]["text"] = "caf\u00e9 \ud800 lone surrogate\n"  # survives the round trip
    await store.record_finished(row("e1"), result("e1"), ups)
    assert await store.get_result("e1") == result("e1")
    assert await store.get_updates("e1") == ups
    [entry] = await store.list()
    assert entry["status"] == "completed" and entry["exit_code"] == 0 and entry["truncated"] is False
    assert entry["finished_at"] is not None and entry["execution_time"] == 0.01
    assert await store.get_result("nope") is None
    await store.close()
    await store.close()  # idempotent
    store.record_started(row("late"))  # ignored after close, no error


@pytest.mark.asyncio
async def test_list_is_newest_first_with_filters_and_a_cursor():
    store = HistoryStore(":memory:")
    await store.open()
    for i in range(6):
        await finished(store, f"e{i}", session="a" if i % 2 else "b")
    store.record_started(row("js", language="javascript", session="a"))
    ids = [e["execution_id"] for e in await store.list()]
    assert ids == ["js", "e5", "e4", "e3", "e2", "e1", "e0"]
    assert [e["execution_id"] for e in await store.list(session_id="a")] == ["js", "e5", "e3", "e1"]
    assert [e["execution_id"] for e in await store.list(language="javascript")] == ["js"]
    page = await store.list(limit=2)
    assert [e["execution_id"] for e in page] == ["js", "e5"]
    page = await store.list(limit=2, before="e5")
    assert [e["execution_id"] for e in page] == ["e4", "e3"]
    page = await store.list(limit=10, before="e3", session_id="a")
    assert [e["execution_id"] for e in page] == ["e1"]
    with pytest.raises(ExecutionNotFound):
        await store.list(before="missing")
    await store.close()


@pytest.mark.asyncio
async def test_max_rows_keeps_the_newest():
    store = HistoryStore(":memory:", max_rows=3)
    await store.open()
    for i in range(5):
        await finished(store, f"e{i}")
    assert [e["execution_id"] for e in await store.list()] == ["e4", "e3", "e2"]
    assert await store.get_result("e0") is None
    # The in-memory id set follows the rows: pruned ids leave it, so it stays bounded.
    assert [store.might_have(f"e{i}") for i in range(5)] == [False, False, True, True, True]
    await store.close()


@pytest.mark.asyncio
async def test_max_age_drops_old_finished_entries(tmp_path):
    path = tmp_path / "h.sqlite3"
    store = HistoryStore(path)
    await store.open()
    old = time.time() - 3600
    store.record_started(row("old", started_at=old))
    await store.record_finished(row("old"), result("old"), [])
    await finished(store, "new")
    await store.close()
    store = HistoryStore(path, max_age=60)  # pruned when opened (and then once a minute)
    await store.open()
    assert [e["execution_id"] for e in await store.list()] == ["new"]
    assert store.might_have("new") and not store.might_have("old")
    await store.close()


@pytest.mark.asyncio
async def test_a_file_survives_reopening_and_orphans_become_interrupted(tmp_path):
    path = tmp_path / "sub" / "history.sqlite3"  # parent directories are created
    store = HistoryStore(path)
    await store.open()
    await finished(store, "done", n=3)
    store.record_started(row("orphan"))  # the server "dies" before it finishes
    await store.close()
    store = HistoryStore(path)
    assert not store.might_have("done")
    await store.open()  # ids of the stored rows are known again, so retries still find them
    assert store.might_have("done") and store.might_have("orphan") and not store.might_have("nope")
    assert await store.get_result("done") == result("done")
    assert await store.get_updates("done") == updates("done", 3)
    lost = await store.get_result("orphan")
    assert lost["status"] == "interrupted" and lost["error"]["ename"] == "ServerStopped"
    assert lost["type"] == "execution_result" and lost["outputs"] == []
    assert [e["status"] for e in await store.list()] == ["interrupted", "completed"]
    await store.close()


@pytest.mark.asyncio
async def test_a_result_without_a_started_row_is_still_stored():
    store = HistoryStore(":memory:")
    await store.open()
    await store.record_finished(row("x"), result("x", status="failed"), [])
    [entry] = await store.list()
    assert entry["status"] == "failed" and entry["error"]["ename"] == "E"
    await store.close()


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask():
    """A umask that would make files 0644 and directories 0755 (the usual default)."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.asyncio
async def test_the_database_its_directories_and_its_wal_are_owner_only(tmp_path, open_umask):
    path = tmp_path / "made" / "by-store" / "history.sqlite3"
    store = HistoryStore(path)
    await store.open()
    await finished(store, "secret")
    wal = path.with_name(path.name + "-wal")
    assert wal.exists()  # the write is in the WAL until a checkpoint
    modes = {p.name: mode(p) for p in (path.parent.parent, path.parent, path, wal)}
    assert modes == {"made": 0o700, "by-store": 0o700, path.name: 0o600, wal.name: 0o600}
    await store.close()


@pytest.mark.asyncio
async def test_an_existing_open_database_and_leftover_wal_are_narrowed(tmp_path, open_umask):
    path = tmp_path / "history.sqlite3"
    store = HistoryStore(path)
    await store.open()
    await finished(store, "old")
    await store.close()
    wal = path.with_name(path.name + "-wal")
    for p in (path, wal):  # as an older server (or a crash) left them
        p.touch()
        p.chmod(0o644)
    tmp_path.chmod(0o755)
    store = HistoryStore(path)
    await store.open()
    assert (mode(path), mode(wal)) == (0o600, 0o600)
    assert mode(tmp_path) == 0o755  # a directory the store did not create keeps its mode
    assert await store.get_result("old") == result("old")
    await store.close()
