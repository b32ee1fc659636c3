"""The execution history: one SQLite file (or ``:memory:``), written off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ExecutionNotFound

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion (= start) order: the history cursor
    execution_id TEXT NOT NULL UNIQUE,
    session_id TEXT,
    connection_id TEXT,
    language TEXT,
    code TEXT,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    execution_time REAL,
    exit_code INTEGER,
    truncated INTEGER NOT NULL DEFAULT 0,
    error TEXT,     -- JSON
    result TEXT,    -- JSON: the execution_result message, exactly as sent
    updates TEXT    -- JSON: every execution_update message, exactly as sent (for resume)
);
CREATE INDEX IF NOT EXISTS executions_session ON executions (session_id, seq);
CREATE INDEX IF NOT EXISTS executions_language ON executions (language, seq);
CREATE INDEX IF NOT EXISTS executions_started ON executions (started_at);
"""

SUMMARY = ("execution_id, session_id, connection_id, language, code, status, started_at, "
           "finished_at, execution_time, exit_code, truncated, error")
AGE_PRUNE_INTERVAL = 60.0
# SQLite's companions of a database file: they hold the same rows (the WAL most recent ones).
SIBLINGS = ("-wal", "-shm", "-journal")


def default_path() -> Path:
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "icpy" / "history.sqlite3"


def owner_only(path: Path) -> None:
    """Create ``path`` (and any missing directories) readable by its owner alone.

    The history holds every session's code and output, and kernels may run as other uids of
    this machine: with ``--db`` outside a private home a 0644 file would let one session read
    another's code. New directories get 0700 and the file 0600 whatever the umask; an existing
    file of ours loses its group/other bits, and so do leftover -wal/-shm/-journal files (SQLite
    creates new ones with the database file's mode).
    """
    missing = []
    for parent in path.parents:
        if parent.exists():
            break
        missing.append(parent)
    for parent in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            parent.mkdir(mode=0o700)
            os.chmod(parent, 0o700)  # the umask may have taken bits from mkdir's mode
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        pass
    else:
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
    for name in (path, *(path.with_name(path.name + s) for s in SIBLINGS)):
        try:
            st = os.stat(name)
        except FileNotFoundError:
            continue
        # Not ours (e.g. root serving a user's file): leave its owner's choice alone.
        if st.st_uid == os.geteuid() and st.st_mode & 0o077:
            os.chmod(name, st.st_mode & 0o700)


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HistoryStore:
    """Every execution, stored as ``running`` when it starts and in full when it ends.

    All SQLite work runs on one dedicated thread with one connection, in submission order:
    writes are fire-and-forget for the caller (the kernel's IOPub reader must never wait on
    a disk), and a read submitted after a write sees it.
    """

    def __init__(self, path: str | Path, *, max_rows: int = 100_000, max_age: float = 0.0) -> None:
        self.path = str(path)
        self.max_rows = max_rows
        self.max_age = max_age
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="icpy-history")
        self._db: sqlite3.Connection | None = None
        self._count = 0
        self._last_age_prune = 0.0
        self._closed = False
        # Every execution_id with a row (and a few pruned ones): an execute carrying a client
        # id asks ``might_have`` instead of waiting for the writer thread, which may be busy
        # storing the previous result. Added on the loop before the row is written, so it
        # never misses one; ids leave when their rows are pruned.
        self._ids: set[str] = set()

    # -- running on the writer thread ----------------------------------------------
    def _open(self) -> None:
        if self.path != ":memory:":
            owner_only(Path(self.path))
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if self.path != ":memory:":
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        # Rows still 'running' belong to a server that died without finishing them.
        db.execute("UPDATE executions SET status = 'interrupted' WHERE status = 'running'")
        self._db = db
        self._ids.update(eid for (eid,) in db.execute("SELECT execution_id FROM executions"))
        self._count = db.execute("SELECT count(*) FROM executions").fetchone()[0]
        self._prune()

    def _prune(self) -> None:
        assert self._db is not None
        if self.max_rows > 0 and self._count > self.max_rows:
            self._forget(self._db.execute(
                "DELETE FROM executions WHERE seq <= (SELECT seq FROM executions "
                "ORDER BY seq DESC LIMIT 1 OFFSET ?) RETURNING execution_id", (self.max_rows,)))
        now = time.time()
        if self.max_age > 0 and now - self._last_age_prune >= AGE_PRUNE_INTERVAL:
            self._last_age_prune = now
            self._forget(self._db.execute(
                "DELETE FROM executions WHERE started_at < ? AND status != 'running' "
                "RETURNING execution_id", (now - self.max_age,)))

    def _forget(self, deleted: sqlite3.Cursor) -> None:
        gone = [eid for (eid,) in deleted]
        self._count -= len(gone)
        self._ids.difference_update(gone)

    def _insert(self, row: dict[str, Any]) -> None:
        assert self._db is not None
        cur = self._db.execute(
            "INSERT OR IGNORE INTO executions (execution_id, session_id, connection_id, language, "
            "code, status, started_at) VALUES (?, ?, ?, ?, ?, 'running', ?)",
            (row["execution_id"], row.get("session_id"), row.get("connection_id"),
             row.get("language"), row.get("code"), row.get("started_at", time.time())))
        self._count += cur.rowcount
        self._prune()

    def _finish(self, row: dict[str, Any], result: dict[str, Any], updates: list[dict[str, Any]]) -> None:
        assert self._db is not None
        self._insert(row)  # an execution that ended before it started (a shutdown) has no row yet
        self._db.execute(
            "UPDATE executions SET status = ?, finished_at = ?, execution_time = ?, exit_code = ?, "
            "truncated = ?, error = ?, result = ?, updates = ? WHERE execution_id = ?",
            (result["status"], time.time(), result.get("execution_time"), result.get("exit_code"),
             int(bool(result.get("truncated"))),
             json.dumps(result["error"]) if result.get("error") else None,
             json.dumps(result), json.dumps(updates), result["execution_id"]))

    def _revise(self, result: dict[str, Any], late: list[dict[str, Any]]) -> None:
        assert self._db is not None
        row = self._db.execute("SELECT updates FROM executions WHERE execution_id = ?",
                               (result["execution_id"],)).fetchone()
        if row is None:
            return  # pruned meanwhile: it stays gone
        updates = json.loads(row[0]) if row[0] else []
        last = updates[-1]["seq"] if updates else 0
        updates += [u for u in late if u["seq"] > last]  # a flush may repeat what one stored
        self._db.execute(
            "UPDATE executions SET truncated = ?, result = ?, updates = ? WHERE execution_id = ?",
            (int(bool(result.get("truncated"))), json.dumps(result), json.dumps(updates),
             result["execution_id"]))

    def _get(self, execution_id: str, column: str) -> Any:
        assert self._db is not None
        return self._db.execute(
            f"SELECT {SUMMARY}, {column} FROM executions WHERE execution_id = ?", (execution_id,)
        ).fetchone()

    def _list(self, session_id: str | None, language: str | None, limit: int,
              before: str | None) -> list[tuple[Any, ...]]:
        assert self._db is not None
        where, args = [], []
        if before is not None:
            row = self._db.execute("SELECT seq FROM executions WHERE execution_id = ?", (before,)).fetchone()
            if row is None:
                raise ExecutionNotFound(f"No execution {before!r} (the 'before' cursor)",
                                        execution_id=before, field="before")
            where.append("seq < ?")
            args.append(row[0])
        if session_id is not None:
            where.append("session_id = ?")
            args.append(session_id)
        if language is not None:
            where.append("language = ?")
            args.append(language)
        sql = f"SELECT {SUMMARY} FROM executions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._db.execute(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- the event loop's side -----------------------------------------------------
    def _submit(self, fn: Any, *args: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self) -> None:
        await self._submit(self._open)

    def _background(self, fn: Any, *args: Any) -> asyncio.Future[Any] | None:
        if self._closed:
            return None
        future = self._submit(fn, *args)
        future.add_done_callback(_log_failure)
        return future

    def might_have(self, execution_id: str) -> bool:
        """False only when no row exists for ``execution_id`` (True: ask ``get_result``)."""
        return execution_id in self._ids

    def record_started(self, row: dict[str, Any]) -> None:
        """``row``: execution_id, session_id, connection_id, language, code. Never blocks."""
        if not self._closed:
            self._ids.add(row["execution_id"])
        self._background(self._insert, {"started_at": time.time(), **row})

    def record_finished(self, row: dict[str, Any], result: dict[str, Any],
                        updates: list[dict[str, Any]]) -> asyncio.Future[Any] | None:
        """Store the final result and the update log; the future is done once written."""
        if not self._closed:
            self._ids.add(row["execution_id"])
        return self._background(self._finish, {"started_at": time.time(), **row}, result, list(updates))

    def record_late(self, result: dict[str, Any], late: list[dict[str, Any]]) -> None:
        """A finished execution got late output: store its result again and append the late
        updates to its log (a row already pruned stays gone)."""
        self._background(self._revise, result, list(late))

    async def get_result(self, execution_id: str) -> dict[str, Any] | None:
        row = await self._submit(self._get, execution_id, "result")
        if row is None:
            return None
        if row[-1] is not None:
            return json.loads(row[-1])
        return _lost_result(row)

    async def get_updates(self, execution_id: str) -> list[dict[str, Any]] | None:
        """The stored update log; None when the execution is unknown or never finished."""
        row = await self._submit(self._get, execution_id, "updates")
        if row is None or row[-1] is None:
            return None
        return json.loads(row[-1])

    async def list(self, *, session_id: str | None = None, language: str | None = None,
                   limit: int = 50, before: str | None = None) -> list[dict[str, Any]]:
        rows = await self._submit(self._list, session_id, language, limit, before)
        return [_entry(row) for row in rows]

    async def close(self) -> None:
        """Finish pending writes, then close. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(RuntimeError):
            await self._submit(self._close)
        self._executor.shutdown(wait=True)


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("history: write failed", exc_info=future.exception())


def _entry(row: tuple[Any, ...]) -> dict[str, Any]:
    (execution_id, session_id, connection_id, language, code, status, started_at, finished_at,
     execution_time, exit_code, truncated, error) = row[:12]
    return {
        "execution_id": execution_id, "session_id": session_id, "connection_id": connection_id,
        "language": language, "code": code, "status": status,
        "started_at": iso(started_at), "finished_at": iso(finished_at),
        "execution_time": execution_time, "exit_code": exit_code, "truncated": bool(truncated),
        "error": json.loads(error) if error else None,
    }


def _lost_result(row: tuple[Any, ...]) -> dict[str, Any]:
    """A row that never got its result: the server stopped (or died) while it ran."""
    entry = _entry(row)
    error = {"ename": "ServerStopped", "evalue": "The server stopped before the execution finished",
             "traceback": []}
    return {
        "type": "execution_result", "execution_id": entry["execution_id"],
        "session_id": entry["session_id"], "language": entry["language"], "status": entry["status"],
        "output": [], "errors": [f"{error['ename']}: {error['evalue']}"], "outputs": [],
        "result": None, "error": error, "execution_count": None, "execution_time": None,
        "exit_code": None, "kernel_restarted": False, "truncated": False,
        "timestamp": entry["started_at"],
    }
