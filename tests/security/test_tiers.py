"""The fallback tiers end to end: B (Landlock) and C (rlimits), forced with ``sandbox_tier``.

A few attacks each (network, writes outside the workspace, fork bomb and daemon, the server's
environment and token), on whichever of the two tiers this machine can run; skipped, with
the reason, where it cannot (e.g. a root server whose Python lives under a 0700 /root: the
dedicated uid cannot run it without tier A's mounts).
"""

from __future__ import annotations

import asyncio
import os

import pytest

from icpy_kernels.provisioning.probe import probe

from ..integration.harness import TOKEN, Client, ThreadedServer
from .conftest import LIMITS, ROOT
from .helpers import out, unreachable

pytestmark = pytest.mark.gen_test(timeout=120)
SESSION = "tier-attacker"


@pytest.fixture(scope="module", params=["landlock", "rlimits"])
def tier_server(request):
    tier = request.param
    # Without seccomp tier C cannot isolate the network: its sessions must ask for it.
    srv = ThreadedServer(**{**LIMITS, "sandbox": "auto"}, sandbox_tier=tier,
                         allow_network=tier == "rlimits").start()
    caps = srv.call(probe())
    if tier not in caps.tiers:
        srv.stop()
        pytest.skip(f"tier {tier!r} is not available here (Landlock ABI {caps.landlock_abi})")
    srv.tier, srv.unreachable = tier, unreachable(tier)
    srv.fields = {"config": {"network": True}} if tier == "rlimits" and not caps.seccomp else {}
    srv.seccomp = caps.seccomp
    yield srv
    srv.stop()


async def run(srv, code: str, **extra) -> dict:
    if srv.unreachable:
        pytest.skip(srv.unreachable)
    client = await Client.connect(srv.url())
    _, r = await client.execute(code, session_id=SESSION, timeout=60, **{**srv.fields, **extra})
    client.close()
    return r


async def test_tier_is_the_one_forced_and_reported(tier_server):
    r = await run(tier_server, "import os\nprint(os.getuid(), os.getcwd() == os.environ['HOME'])")
    assert r["status"] == "completed", r
    report = tier_server.sessions()[SESSION]["sandbox"]
    assert report["tier"] == tier_server.tier and report["dedicated_uid"] is ROOT, report
    uid = int(out(r).split()[0])
    assert (uid != 0) if ROOT else (uid == os.getuid()), r
    assert report["network"] == ("allowed" if tier_server.fields else "isolated")
    assert report["seccomp"]["enabled"] is tier_server.seccomp, report


async def test_tier_c_refuses_a_session_that_needs_network_isolation(tier_server):
    if tier_server.tier != "rlimits" or tier_server.seccomp:
        pytest.skip("only tier C without seccomp cannot isolate the network")
    client = await Client.connect(tier_server.url())
    _, err = await client.execute("1", session_id="needs-isolation")
    assert err["type"] == "error" and err["code"] == "sandbox_unavailable", err
    assert "network isolation" in err["message"]
    # No kernel started (the manager keeps the session record, kernel-less, in state "new").
    assert tier_server.sessions().get("needs-isolation", {}).get("sandbox") is None


async def test_network(tier_server):
    # Creating the UDP socket is the test (connect() to TEST-NET would send nothing anyway);
    # TCP goes to the test server on loopback only.
    code = (
        "import socket\n"
        "try:\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); print('udp socket')\n"
        "    s.connect(('192.0.2.1', 9)); print('udp connected')\n"
        "except OSError as e: print('udp', type(e).__name__, e)\n"
        f"try:\n    t = socket.create_connection(('127.0.0.1', {tier_server.port}), 2); print('tcp connected')\n"
        "except OSError as e: print('tcp', type(e).__name__)\n"
        "a, b = socket.socketpair(); a.send(b'u'); print('unix', b.recv(1).decode())\n"
    )
    text = out(await run(tier_server, code))
    assert "unix u" in text, text
    if tier_server.fields:
        assert "tcp connected" in text, text  # tier C without seccomp: network sessions only
    elif tier_server.seccomp:
        # Only unix sockets: no UDP, no TCP, whatever Landlock's ABI.
        assert "udp PermissionError [Errno 13] Permission denied" in text, text
        assert "udp socket" not in text and "tcp PermissionError" in text, text
    else:
        assert "tcp PermissionError" in text, text  # Landlock ABI >= 4 denies TCP connect
        assert "udp connected" in text, text  # ...but not UDP (docs/security.md says so)


async def test_writes_outside_the_workspace(tier_server):
    import icpy_kernels

    package = os.path.dirname(icpy_kernels.__file__)
    code = (
        "import os\n"
        f"for p in ['/etc/icpy-pwned', {os.path.join(package, 'pwned.py')!r}, os.path.expanduser('~/../pwned')]:\n"
        "    try:\n        open(p, 'w').write('x'); print('WROTE', p); os.remove(p)\n"
        "    except OSError as e: print('denied', p, type(e).__name__)\n"
        "open('mine.txt', 'w').write('ok'); print('workspace', open('mine.txt').read())\n"
    )
    text = out(await run(tier_server, code))
    workspace = tier_server.sessions()[SESSION]["sandbox"]["workspace"]
    assert "workspace ok" in text and "denied /etc/icpy-pwned" in text, text
    if tier_server.tier == "landlock" or ROOT:
        assert "WROTE" not in text, text
    else:
        # Tier C as an ordinary user: host permissions only, so the server's own files are
        # the kernel's too (docs/security.md, "What is not enforced").
        assert f"WROTE {workspace}/../pwned" in text, text
    assert "pwned.py" not in os.listdir(package)


async def test_reads_outside_the_view(tier_server):
    """Tier B reads only the view (Landlock rules on an allow-list, not on "/"): the runtime
    directory with every kernel's connection file, the server's checkout and the user's home
    stay closed even to the server's own uid. Tier C has host permissions only."""
    from jupyter_core.paths import jupyter_runtime_dir

    targets = [jupyter_runtime_dir(), os.path.join(os.getcwd(), "pyproject.toml"),
               os.environ["HOME"], "/sys/fs/cgroup"]
    code = "import os\n" + "".join(
        f"try:\n    os.listdir({t!r}) if os.path.isdir({t!r}) else open({t!r}).read(1); print('READ', {t!r})\n"
        f"except OSError as e: print('denied', {t!r}, e.errno)\n" for t in targets)
    text = out(await run(tier_server, code))
    if tier_server.tier == "landlock":
        assert "READ" not in text and text.count("denied") == len(targets), text
    elif not ROOT:
        assert f"READ {jupyter_runtime_dir()}" in text, text  # documented: no isolation on C


async def test_server_environment_token_and_signals(tier_server):
    server_pid = os.getpid()
    code = (
        "import os\n"
        f"try:\n    print('ENV', open('/proc/{server_pid}/environ').read()[:20])\n"
        "except OSError as e: print('environ', type(e).__name__)\n"
        f"print('token in env', {TOKEN!r} in str(dict(os.environ)))\n"
        "print('ICPY vars', [k for k in os.environ if k.startswith('ICPY')])\n"
        f"try:\n    os.kill({server_pid}, 0); print('can signal server')\n"
        "except OSError as e: print('signal', type(e).__name__)\n"
    )
    text = out(await run(tier_server, code))
    assert "environ PermissionError" in text and "ENV" not in text, text
    assert "token in env False" in text and "ICPY vars []" in text, text
    caps = tier_server.call(probe())
    if ROOT or (tier_server.tier == "landlock" and caps.landlock_abi >= 6):
        assert "signal PermissionError" in text, text  # other uid, or Landlock's signal scope
    else:
        assert "can signal server" in text, text  # same uid, no scope: documented


async def test_interrupt_keeps_state(tier_server):
    await run(tier_server, "kept = 41")
    r = await run(tier_server, "while True: pass", config={**tier_server.fields.get("config", {}),
                                                          "timeout": 2})
    assert r["status"] == "timeout" and not r["kernel_restarted"], r
    assert out(await run(tier_server, "print(kept + 1)")) == "42"


async def test_fork_bomb_is_capped_and_daemons_die_with_the_session(tier_server):
    code = (
        "import os, time\n"
        "r, w = os.pipe()\n"
        "if os.fork() == 0:\n"  # a setsid, double-forked daemon
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.write(w, str(os.getpid()).encode()); time.sleep(600)\n"
        "    os._exit(0)\n"
        "daemon = int(os.read(r, 20))\n"
        "kids = []\n"
        "try:\n"
        "    while True:\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n"
        "            while True: time.sleep(1)\n"
        "        kids.append(pid)\n"
        "except OSError as e:\n"
        "    print('fork failed after', len(kids), type(e).__name__)\n"
        "print('pids', daemon, *kids)\n"
    )
    r = await run(tier_server, code)
    lines = out(r).splitlines()
    assert lines[0].startswith("fork failed after") and "BlockingIOError" in lines[0], r
    # Root: a dedicated uid counts only this kernel. Otherwise RLIMIT_NPROC counts all the
    # server uid's tasks, set `process_limit` above what it ran at launch: a little slack.
    assert int(lines[0].split()[3]) < LIMITS["process_limit"] + (0 if ROOT else 32), r
    pids = [int(p) for p in lines[1].split()[1:]]
    assert alive(pids)
    tier_server.call(tier_server.manager.shutdown_session(SESSION))
    for _ in range(50):
        if not alive(pids):
            break
        await asyncio.sleep(0.1)
    assert not alive(pids), f"outlived the session: {alive(pids)}"


def alive(pids: list[int]) -> list[int]:
    left = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if ") Z " not in f.read():
                    left.append(pid)
        except OSError:
            continue
    return left
