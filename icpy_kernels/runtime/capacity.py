"""Admission: whether a new session or a queued execution fits the server's limits.

Pure checks over the live sessions, so the counts can never drift from what runs: a session
is counted from its creation until its kernel is gone (the manager's registry), whichever
transport made it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..config import Settings
from ..errors import CapacityError, QueueFull

if TYPE_CHECKING:
    from .session import Session

RAM_FRACTION = 0.75  # of the machine's RAM, for --max-total-memory 0: the server and the
# page cache keep the rest; kernels' limits are ceilings, so this is what they may all use at once


def machine_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # not a POSIX sysconf: no automatic cap
        return 0


def total_memory_cap(settings: Settings) -> int:
    """The cap on the sum of session memory limits, in bytes; 0 = none."""
    if settings.max_total_memory < 0:
        return 0
    return settings.max_total_memory or int(machine_memory() * RAM_FRACTION)


def session_memory(settings: Settings, enforced: int) -> int:
    """What a session counts against the memory cap: its enforced limit, or, for a kernel
    nothing limits (sandbox off, ``config.sandbox: false``), the per-kernel ``--memory-limit``
    it would have had: an unlimited kernel must not be free."""
    return enforced if enforced > 0 else max(settings.memory_limit, 0)


def admit_session(sessions: Iterable[Session], settings: Settings, client: str | None, memory: int) -> None:
    """Refuse a new session over any limit, naming it (``capacity``, 503)."""
    live = list(sessions)
    if len(live) >= settings.max_sessions:
        raise CapacityError(f"No capacity: {settings.max_sessions} sessions are running (--max-sessions)",
                            limit="max_sessions")
    per_client = settings.max_sessions_per_connection
    if client is not None and per_client > 0 and sum(s.client_id == client for s in live) >= per_client:
        raise CapacityError(f"No capacity: this client already has {per_client} sessions "
                            "(--max-sessions-per-connection)", limit="max_sessions_per_connection")
    cap = total_memory_cap(settings)
    used = sum(s.memory for s in live)
    if cap and used + memory > cap:
        raise CapacityError(
            f"No capacity: the sessions' memory limits would add up to {used + memory} bytes, over "
            f"--max-total-memory ({cap}); ask for less with config.limits.memory, or shut a session down",
            limit="max_total_memory")


def admit_execution(session: Session, settings: Settings, size: int) -> None:
    """Refuse an execution its session cannot hold (``queue_full``, 429)."""
    if settings.max_queued > 0 and session.queued >= settings.max_queued:
        raise QueueFull(f"Session {session.id!r} already holds {session.queued} executions (--max-queued)",
                        session_id=session.id, limit="max_queued")
    # One execution alone always fits (max_message_size bounds it): the cap is on the backlog.
    if settings.max_queued_bytes > 0 and session.queued and session.queued_bytes + size > settings.max_queued_bytes:
        raise QueueFull(
            f"Session {session.id!r} would hold {session.queued_bytes + size} bytes of code, over "
            f"--max-queued-bytes ({settings.max_queued_bytes})", session_id=session.id,
            limit="max_queued_bytes")
