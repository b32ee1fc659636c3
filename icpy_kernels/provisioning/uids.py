"""Per-kernel uids for a root server: leased from a range under a lock file, emptied on release."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def parse_range(text: str) -> range:
    low, _, high = text.partition("-")
    first, last = int(low), int(high or low)
    if first <= 0 or last < first:
        raise ValueError(f"invalid uid range {text!r}")
    return range(first, last + 1)


def lock_dir() -> Path:
    # Shared by every server on the machine, so two servers never lease the same uid.
    base = Path("/run") if os.geteuid() == 0 and os.path.isdir("/run") else Path(tempfile.gettempdir())
    path = base / "icpy-sandbox-uids"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _process_statuses() -> Iterator[tuple[int, dict[str, str]]]:
    """(pid, fields of /proc/<pid>/status) for every process still readable."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        yield int(entry.name), dict(line.split(":", 1) for line in status.splitlines() if ":" in line)


def _uid(fields: dict[str, str]) -> int:
    return int(fields.get("Uid", "-1").split()[0])


def processes_of(uids: range | set[int]) -> list[tuple[int, int]]:
    """(pid, uid) of live, non-zombie processes whose real uid is in ``uids``."""
    return [
        (pid, _uid(fields)) for pid, fields in _process_statuses()
        if _uid(fields) in uids and not fields.get("State", "").strip().startswith("Z")
    ]


def tasks_of(uid: int) -> int:
    """Threads included: what RLIMIT_NPROC counts for ``uid``."""
    return sum(int(fields.get("Threads", "1").strip() or 1)
               for _, fields in _process_statuses() if _uid(fields) == uid)


class UidLease:
    """One uid held for one kernel's lifetime; the flock dies with the server if it crashes."""

    def __init__(self, uid: int, fd: int) -> None:
        self.uid = uid
        self._fd = fd

    @classmethod
    def acquire(cls, uids: range) -> UidLease:
        directory = lock_dir()
        busy = {uid for _, uid in processes_of(uids)}
        for uid in uids:
            if uid in busy:
                continue
            fd = os.open(directory / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return cls(uid, fd)
        raise RuntimeError(f"no free sandbox uid in {uids.start}-{uids.stop - 1}")

    async def release(self) -> None:
        await kill_uid(self.uid)
        with contextlib.suppress(OSError):
            os.close(self._fd)


async def kill_uid(uid: int, attempts: int = 20) -> None:
    """SIGKILL every process of ``uid``, wherever it hides (setsid, double fork, other pid ns).

    ``kill(-1)`` run *as that uid* reaches exactly its processes, atomically enough to beat a
    fork loop after a few rounds.
    """
    for _ in range(attempts):
        if not processes_of({uid}):
            return
        proc = await asyncio.create_subprocess_exec(
            # /bin/sh, not this interpreter: the uid may not be able to reach our install.
            "/bin/sh", "-c", "kill -9 -1",
            user=uid, group=uid, extra_groups=[],
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        await proc.wait()
        await asyncio.sleep(0.05)
