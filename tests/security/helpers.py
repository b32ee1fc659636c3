"""An attacker and an innocent bystander, each on its own connection and named session."""

from __future__ import annotations

import asyncio
import time
from typing import Any

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
