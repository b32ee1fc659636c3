"""An attacker and an innocent bystander, each on its own connection and named session."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from icpy_kernels.provisioning import policy
from icpy_kernels.provisioning.uids import processes_of

from ..integration.harness import Client


def out(result: dict[str, Any]) -> str:
    return "\n".join(result.get("output") or [])


async def innocent_check(client: Client, session: str, *, budget: float = 5.0) -> float:
    """The bystander's counter moves on by one, promptly: its kernel state is intact."""
    started = time.monotonic()
    _, result = await client.execute("n = globals().get('n', 0) + 1\nprint(n)", session_id=session,
                                      timeout=60)
    elapsed = time.monotonic() - started
    assert result.get("status") == "completed", result
    assert elapsed < budget, f"innocent execution took {elapsed:.1f}s"
    return elapsed


async def alongside(attacker: Client, innocent: Client, code: str, *, session: str,
                    innocent_session: str, **fields: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run the attack while the bystander keeps executing; return the attack's frames and result."""
    attack = asyncio.ensure_future(attacker.execute(code, session_id=session, timeout=90, **fields))
    await asyncio.sleep(0.3)
    while not attack.done():
        await innocent_check(innocent, innocent_session, budget=8.0)
        await asyncio.sleep(0.2)
    await innocent_check(innocent, innocent_session)
    return attack.result()


# Printed by a kernel: who it is, as the host sees it (uid; pid namespace and user namespace).
IDENTITY = ("import os\nprint('identity', os.getuid(), os.readlink('/proc/self/ns/pid'), "
            "os.readlink('/proc/self/ns/user'))\n")


def identity(text: str) -> tuple[int, str, str]:
    line = next(x for x in text.splitlines() if x.startswith("identity "))
    _, uid, pidns, userns = line.split()
    return int(uid), pidns, userns


def sandbox_members(ident: tuple[int, str, str]) -> list[int]:
    """Live processes of one kernel's sandbox: its dedicated uid (root server) or, for a
    server's own uid, its private pid namespace (never the server's)."""
    uid, pidns, _ = ident
    if uid != os.getuid():
        return [pid for pid, _ in processes_of({uid})]
    if pidns == os.readlink("/proc/self/ns/pid"):
        raise AssertionError("the kernel shares the server's pid namespace: no sandbox to count")
    found = []
    for pid, _ in processes_of({uid}):
        try:
            if os.readlink(f"/proc/{pid}/ns/pid") == pidns:
                found.append(pid)
        except OSError:
            continue
    return found


async def members_gone(ident: tuple[int, str, str], within: float = 5.0) -> list[int]:
    for _ in range(int(within / 0.1)):
        if not (left := sandbox_members(ident)):
            return left
        await asyncio.sleep(0.1)
    return sandbox_members(ident)


def unreachable(tier: str) -> str | None:
    """Why a root server's kernels cannot run on tiers B/C here (Python under a 0700 /root)."""
    if os.geteuid() == 0 and tier != "bwrap":
        for path in policy.runtime_paths([sys.executable], os.environ.get("PATH", os.defpath)):
            if hidden := policy.hidden_ancestor(path):
                return (f"a root server's dedicated uid cannot reach {path} (inside {hidden}) on "
                        f"tier {tier!r}: run the suite as an ordinary user to cover this tier")
    return None
