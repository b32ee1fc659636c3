"""Memory without a memory cgroup (a non-root server, cgroup v2 without delegation): every
process of the sandbox, Node included, is held by RLIMIT_AS, and the report says the limit is
per process, not per kernel.

This machine's cgroup v1 memory hierarchy is writable by root, so the module hides it: the
server runs in this process (ThreadedServer), where ``cgroups.writable_bases`` is patched."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import AsyncHTTPClient

from icpy_kernels.provisioning import cgroups, probe
from icpy_kernels.provisioning.memory import NODE_CODE_RANGE

from ..integration.harness import Client, ThreadedServer
from .conftest import LIMITS
from .helpers import alongside, innocent_check, out

pytestmark = pytest.mark.gen_test(timeout=150)
MEMORY = LIMITS["memory_limit"]
INN = "mem-innocent"

# Holds on to 64 MiB Buffers (outside V8's heap: --max-old-space-size does not see them) up to
# three times the limit, then reports how much it got and why it stopped.
NODE_BUFFERS = f"""
const held = [];
let why = 'held all';
try {{
  while (held.length * 64 < 3 * {MEMORY >> 20}) held.push(Buffer.alloc(64 << 20, 1));
}} catch (e) {{ why = e.constructor.name + ': ' + e.message; }}
console.log('held', held.length * 64, why);
"""


@pytest.fixture(scope="module")
def server():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cgroups, "writable_bases", lambda: {})
        patch.setattr(probe, "_cached", None)  # /api/health must see the patched machine
        srv = ThreadedServer(**{**LIMITS, "sandbox_uid_range": "3001100-3001149"}).start()
        yield srv
        srv.stop()


async def test_node_buffers_stop_at_the_limit(server):
    attacker, innocent = await Client.connect(server.url()), await Client.connect(server.url())
    await innocent_check(innocent, INN, budget=30)
    _, r = await alongside(attacker, innocent, NODE_BUFFERS, session="mem-node", language="javascript",
                           innocent_session=INN)
    if r["status"] == "completed":
        _, held, *why = out(r).split()
        print(f"node held {held} MiB of Buffers under a {MEMORY >> 20} MiB limit: {' '.join(why)}")
        assert int(held) < MEMORY >> 20, r
        assert "RangeError" in why[0], r
    else:  # the kernel died of it: acceptable, as long as it comes back
        assert r["kernel_restarted"], str(r)
    _, r = await attacker.execute("console.log('alive', 6 * 7)", session_id="mem-node", language="javascript")
    assert out(r) == "alive 42", r


async def test_report_says_per_process_rlimit_as(server):
    client = await Client.connect(server.url())
    await client.execute("pass", session_id="mem-py")
    await client.execute("1", session_id="mem-node", language="javascript")
    sessions = server.sessions()
    python = sessions["mem-py"]["sandbox"]["limits"]["memory"]
    assert python == {"bytes": MEMORY, "enforced_by": ["rlimit_as"], "scope": "per_process",
                      "rlimit_as_bytes": MEMORY}, python
    node = sessions["mem-node"]["sandbox"]["limits"]["memory"]
    assert node == {"bytes": MEMORY, "enforced_by": ["rlimit_as", "node_heap"], "scope": "per_process",
                    "rlimit_as_bytes": MEMORY + NODE_CODE_RANGE}, node
    health = json.loads((await AsyncHTTPClient().fetch(server.url("/api/health").replace("ws", "http", 1))).body)
    assert health["sandbox"]["memory"] == {"enforced_by": ["rlimit_as"], "scope": "per_process"}, health


async def test_each_child_is_held_by_its_own_rlimit(server):
    """What per_process means: a child past the limit fails; a second one is not counted
    with the first (docs/security.md, "What is not enforced")."""
    client = await Client.connect(server.url())
    code = (
        "import subprocess, sys\n"
        "grab = 'b = bytearray(%d); print(len(b) >> 20)'\n"
        f"big = subprocess.run([sys.executable, '-c', grab % ({MEMORY} + (64 << 20))], capture_output=True, text=True)\n"
        "print('big', 'MemoryError' in big.stderr)\n"
    )
    _, r = await client.execute(code, session_id="mem-py")
    assert out(r) == "big True", r
