"""Resource attacks: fork bomb, memory, disk, output, hangs, exits; each hits its limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from icpy_kernels.provisioning import cgroups

from ..integration.harness import Client
from .conftest import LIMITS
from .helpers import (
    IDENTITY,
    alongside,
    identity,
    innocent_check,
    members_gone,
    out,
    sandbox_members,
)

pytestmark = pytest.mark.gen_test(timeout=150)
ATK, INN = "limits-attacker", "limits-innocent"


async def clients(server):
    return await Client.connect(server.url()), await Client.connect(server.url())


async def test_fork_bomb_is_capped_and_dies_with_its_session(server):
    attacker, innocent = await clients(server)
    await innocent_check(innocent, INN, budget=30)
    code = (
        "import os, time\nn = 0\n"
        "try:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            while True: time.sleep(1)\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print('fork failed after', n, type(e).__name__)\n"
    ) + IDENTITY
    _, r = await alongside(attacker, innocent, code, session="bomb", innocent_session=INN)
    lines = out(r).splitlines()
    assert lines[0].startswith("fork failed after") and "BlockingIOError" in lines[0], r
    assert int(lines[0].split()[3]) < LIMITS["process_limit"]
    ident = identity(out(r))
    assert len(sandbox_members(ident)) > 10  # the children are really there...
    await attacker.send({"type": "ping"})
    server.call(server.manager.shutdown_session("bomb"))
    assert await members_gone(ident) == []  # ...and gone with the session


async def test_memory_bomb_is_a_memory_error(server):
    attacker, innocent = await clients(server)
    _, r = await alongside(attacker, innocent, "b = b'x' * (2 * 1024**3)", session=ATK,
                           innocent_session=INN)
    assert r["status"] == "failed", r
    assert r["error"]["ename"] == "MemoryError" or r["kernel_restarted"], r


async def test_disk_filler_hits_file_size_and_quota(server):
    attacker, innocent = await clients(server)
    code = (
        "try:\n    open('big', 'wb').write(b'x' * (9 << 20))\n"
        "except OSError as e: print('big', e.strerror)\n"
        "import os\nos.remove('big')\n"
    )
    _, r = await alongside(attacker, innocent, code, session=ATK, innocent_session=INN)
    assert "big File too large" in out(r), r
    # Apart: the quota watcher may stop the kernel before it flushes what it printed.
    code = "for i in range(3):\n    open(f'part{i}', 'wb').write(b'x' * (7 << 20))\n"
    _, r = await alongside(attacker, innocent, code, session=ATK, innocent_session=INN)
    assert r["status"] == "failed" and r["error"]["ename"] == "DiskQuotaExceeded", r
    _, r = await attacker.execute("import os\nfor i in range(3): os.remove(f'part{i}')", session_id=ATK)
    assert r["status"] == "completed", r


async def test_infinite_output_is_cut(server):
    attacker, innocent = await clients(server)
    _, r = await alongside(attacker, innocent, "while True: print('x' * 1000)", session=ATK,
                           innocent_session=INN, config={"timeout": 4})
    assert r["truncated"] is True and r["status"] == "timeout", r


async def test_busy_loop_times_out_and_keeps_state(server):
    attacker, innocent = await clients(server)
    await attacker.execute("kept = 41", session_id=ATK)
    _, r = await alongside(attacker, innocent, "while True: pass", session=ATK,
                           innocent_session=INN, config={"timeout": 2})
    assert r["status"] == "timeout" and not r["kernel_restarted"], r
    _, r = await attacker.execute("print(kept + 1)", session_id=ATK)
    assert out(r) == "42", r


async def test_c_level_hang_restarts_the_kernel(server):
    attacker, innocent = await clients(server)
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
    _, r = await alongside(attacker, innocent, code, session=ATK, innocent_session=INN,
                           config={"timeout": 2})
    assert r["status"] == "timeout" and r["kernel_restarted"], r


async def test_kernel_exit_is_reported_and_recovered(server):
    attacker, innocent = await clients(server)
    _, r = await alongside(attacker, innocent, "import os\nos._exit(1)", session=ATK,
                           innocent_session=INN)
    assert r["status"] == "failed" and r["kernel_restarted"], r
    _, r = await attacker.execute("print('back')", session_id=ATK)
    assert out(r) == "back", r


async def test_setsid_double_fork_dies_with_the_session(server):
    attacker, innocent = await clients(server)
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(600)\n"
        "    os._exit(0)\n"
        "time.sleep(0.5)\n"
    ) + IDENTITY
    _, r = await alongside(attacker, innocent, code, session="daemon", innocent_session=INN)
    ident = identity(out(r))
    assert len(sandbox_members(ident)) >= 2  # kernel + the daemon
    server.call(server.manager.shutdown_session("daemon"))
    assert await members_gone(ident) == []


async def test_bash_fork_bomb(server):
    if "bash" not in server.manager.languages.available():
        pytest.skip("the icpy-bash kernel is not installed")
    attacker, innocent = await clients(server)
    await innocent_check(innocent, INN, budget=30)
    _, r = await alongside(attacker, innocent, ":(){ :|:& };:; sleep 3; echo survived",
                           session="bash-bomb", innocent_session=INN, language="bash",
                           config={"timeout": 15})
    assert r["status"] in ("completed", "failed", "timeout"), r
    server.call(server.manager.shutdown_session("bash-bomb"))


# Two children burn a core each for ~2 s of wall time; the parent then reports what they used.
CPU_HOG = (
    "import os, time\n"
    "started = time.monotonic()\nkids = []\n"
    "for _ in range(2):\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        while time.monotonic() - started < 2.0: pass\n"
    "        os._exit(0)\n"
    "    kids.append(pid)\n"
    "for pid in kids: os.waitpid(pid, 0)\n"
    "wall = time.monotonic() - started\n"
    "t = os.times()\n"
    "print('cpu', t.children_user + t.children_system, 'wall', wall)\n"
) + IDENTITY


def cpu_cgroup_of(pid: int) -> Path | None:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if "cpu" in names.split(","):
            return cgroups.V1_MOUNT / "cpu" / path.lstrip("/")
    return None


async def test_cpu_limit_holds_a_kernel_to_its_millicores(server):
    if "cpu" not in cgroups.writable_bases():
        pytest.skip("no writable cgroup v1 cpu hierarchy here (e.g. cgroup v2 without "
                    "delegation, or not root): the CPU limit is not enforced")
    attacker, innocent = await clients(server)
    await attacker.execute("pass", session_id="cpu-hog", config={"limits": {"cpu": 500}})
    report = server.sessions()["cpu-hog"]["sandbox"]["limits"]["cpu"]
    assert report == {"millicores": 500, "enforced_by": ["cgroup"]}, report
    ident = identity(out((await attacker.execute(IDENTITY, session_id="cpu-hog"))[1]))
    group = cpu_cgroup_of(sandbox_members(ident)[0])
    assert group is not None and group.name.startswith("sbx-"), group
    _, r = await alongside(attacker, innocent, CPU_HOG, session="cpu-hog", innocent_session=INN)
    assert r["status"] == "completed", r
    _, cpu, _, wall = out(r).splitlines()[0].split()
    ratio = float(cpu) / float(wall)
    print(f"cpu-limited kernel: {float(cpu):.2f} s of CPU in {float(wall):.2f} s, ratio {ratio:.2f}")
    # Unlimited, two busy children on two cores come near 2.0; half a core allows 0.5. The
    # lower bound shows the children really ran and were counted (else any ratio passes).
    assert 0.2 < ratio < 0.75, (ratio, r)
    server.call(server.manager.shutdown_session("cpu-hog"))
    assert await members_gone(ident) == []
    assert not group.exists(), f"{group} outlived its kernel"
