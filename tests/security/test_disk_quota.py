"""The disk quota holds while code runs: a writer that outlives its execution is stopped."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from icpy_kernels.provisioning.safefs import disk_usage

from ..integration.harness import Client
from .conftest import LIMITS
from .helpers import IDENTITY, identity, innocent_check, members_gone, out, sandbox_members

pytestmark = pytest.mark.gen_test(timeout=120)
ATK, INN = "quota-attacker", "quota-innocent"
QUOTA = LIMITS["disk_quota"]
CHUNKS = 200  # 200 MiB at most: on code without the watcher the test fails, the disk does not fill
# The watcher polls (every 0.2 s or so): a writer gets past the quota by what it writes in one
# interval plus the kill, about 0.3 s here, longer on a loaded machine. ~2 s of writing at the
# writers' 50 MiB/s is the bound: far below what they write when nothing stops them.
OVERSHOOT = 96 << 20

# A setsid double-forked daemon writes 1 MiB files (each under the file size limit) for ~4 s,
# then sleeps: it outlives the execution, which returns at once.
DETACHED_WRITER = (
    "import os, time\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        chunk = b'x' * (1 << 20)\n"
    f"        for i in range({CHUNKS}):\n"
    "            with open(f'fill{i}', 'wb') as f:\n"
    "                f.write(chunk)\n"
    "            time.sleep(0.02)\n"
    "        time.sleep(600)\n"
    "    os._exit(0)\n"
    "os.wait()\n"
) + IDENTITY


async def usage(path: str) -> int:
    return await asyncio.to_thread(disk_usage, path)


async def test_detached_writer_is_stopped_at_the_quota(server):
    attacker, innocent = await Client.connect(server.url()), await Client.connect(server.url())
    await innocent_check(innocent, INN, budget=30)
    _, r = await attacker.execute(DETACHED_WRITER, session_id=ATK)
    assert r["status"] == "completed", r  # it returned while its daemon writes on
    ident = identity(out(r))
    report = server.sessions()[ATK]["sandbox"]
    workspace = report["workspace"]

    # Poll until the sandbox is empty (the watcher killed everything), under a deadline the
    # writer alone would outlast by ten minutes.
    started, peak = time.monotonic(), 0
    while sandbox_members(ident) and time.monotonic() - started < 20:
        peak = max(peak, await usage(workspace))
        await asyncio.sleep(0.05)
    stopped_after = time.monotonic() - started
    assert await members_gone(ident, within=1.0) == [], "the detached writer was not stopped"
    final = await usage(workspace)
    await asyncio.sleep(1.0)
    assert await usage(workspace) == final, "something still writes to the workspace"
    print(f"detached writer stopped {stopped_after:.2f} s after its execution; workspace "
          f"{final / 2**20:.1f} MiB with a {QUOTA / 2**20:.0f} MiB quota "
          f"(overshoot {(final - QUOTA) / 2**20:.1f} MiB)")
    assert QUOTA < max(peak, final) < QUOTA + OVERSHOOT, (peak, final)
    await innocent_check(innocent, INN)

    # The next execution restarts the kernel and says why; cleaning up makes it usable again.
    _, r = await attacker.execute("print('back')", session_id=ATK)
    assert r["status"] == "failed" and r["error"]["ename"] == "DiskQuotaExceeded", r
    assert r["error"]["evalue"].startswith("Processes stopped: disk quota exceeded"), r
    _, r = await attacker.execute("import glob, os\nfor p in glob.glob('fill*'): os.remove(p)\n"
                                  "print('clean')", session_id=ATK)
    assert r["status"] == "completed" and out(r) == "clean", r
    assert await usage(workspace) < QUOTA
    await innocent_check(innocent, INN)
    assert report["limits"]["disk_quota"] == {
        "bytes": QUOTA, "watch_interval": 0.2, "enforced_by": ["watcher", "checked_after_execution"]}


async def test_a_thread_writing_inside_an_execution_fails_it(server):
    attacker, _ = await Client.connect(server.url()), None
    code = ("import threading, time\n"
            "def fill():\n"
            "    for i in range(100):\n"
            "        open(f'thread{i}', 'wb').write(b'x' * (1 << 20))\n"
            "        time.sleep(0.02)\n"
            "threading.Thread(target=fill, daemon=True).start()\n"
            "time.sleep(30)\n")
    started = time.monotonic()
    _, r = await attacker.execute(code, session_id="quota-thread")
    elapsed = time.monotonic() - started
    assert r["status"] == "failed" and r["kernel_restarted"], r
    assert r["error"]["ename"] == "DiskQuotaExceeded", r
    assert r["error"]["evalue"].startswith("Processes stopped"), r
    assert elapsed < 10, elapsed  # stopped at the quota, not at the 30 s sleep's end
    workspace = Path(server.sessions()["quota-thread"]["sandbox"]["workspace"])
    assert await usage(str(workspace)) < QUOTA + OVERSHOOT
    server.call(server.manager.shutdown_session("quota-thread"))


async def test_no_file_outgrows_the_quota(server):
    """RLIMIT_FSIZE is held at the disk quota when that is the smaller: a hard bound per file."""
    attacker = await Client.connect(server.url())
    quota = 4 << 20  # under the server's file size limit (8 MiB)
    code = ("try:\n    open('one', 'wb').write(b'x' * (6 << 20))\n"
            "except OSError as e: print('one', e.strerror)\n")
    _, r = await attacker.execute(code, session_id="quota-file", config={"limits": {"disk_quota": quota}})
    assert "one File too large" in out(r), r
    limits = server.sessions()["quota-file"]["sandbox"]["limits"]
    assert limits["file_size"] == {"bytes": quota, "enforced_by": ["rlimit_fsize"]}, limits
    server.call(server.manager.shutdown_session("quota-file"))
