"""Attacks from inside a kernel end contained; the server and a bystander session carry on."""

from __future__ import annotations

import os
import socket

import pytest

import icpy_kernels
from icpy_kernels.provisioning.uids import parse_range

from ..integration.harness import TOKEN, Client
from .conftest import ROOT, UID_RANGE
from .helpers import IDENTITY, alongside, identity, innocent_check, out

pytestmark = pytest.mark.gen_test(timeout=120)
ATK, INN = "attacker", "innocent"


async def clients(server):
    return await Client.connect(server.url()), await Client.connect(server.url())


def report_workspace(server) -> str:
    return server.sessions()[ATK]["sandbox"]["workspace"]


async def test_sandbox_is_tier_a_and_reported(server):
    attacker, innocent = await clients(server)
    _, r = await attacker.execute(IDENTITY + "print('home', os.getcwd() == os.environ['HOME'])",
                                  session_id=ATK)
    assert r["status"] == "completed", r
    uid, pidns, userns = identity(out(r))
    assert "home True" in out(r), r
    assert pidns != os.readlink("/proc/self/ns/pid")
    if ROOT:  # a dedicated host uid
        assert uid in parse_range(UID_RANGE)
    else:  # the server's uid, inside a user namespace of its own
        assert uid == os.getuid() and userns != os.readlink("/proc/self/ns/user")
    report = server.sessions()[ATK]["sandbox"]
    assert report["tier"] == "bwrap" and report["network"] == "isolated"
    assert report["dedicated_uid"] is ROOT and report["uid"] == uid
    await innocent_check(innocent, INN, budget=30)


async def test_no_network_route_and_no_host_loopback(server):
    attacker, innocent = await clients(server)
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(1.0)
    udp_port = listener.getsockname()[1]
    code = (
        "import socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "try:\n    s.connect(('192.0.2.1', 9)); print('connected')\n"
        "except OSError as e: print('udp', e.strerror)\n"
        f"t = socket.socket()\nt.settimeout(2)\n"
        f"try:\n    t.connect(('127.0.0.1', {server.port})); print('reached server')\n"
        "except OSError as e: print('tcp', type(e).__name__)\n"
        f"u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"try:\n    u.sendto(b'leak', ('127.0.0.1', {udp_port}))\nexcept OSError: pass\n"
    )
    _, r = await alongside(attacker, innocent, code, session=ATK, innocent_session=INN)
    text = out(r)
    assert "udp Network is unreachable" in text, r
    assert "tcp ConnectionRefusedError" in text and "reached server" not in text, r
    with pytest.raises(socket.timeout):
        listener.recvfrom(100)  # the kernel's loopback is its own
    listener.close()


async def test_filesystem_is_read_only_outside_the_workspace(server):
    attacker, innocent = await clients(server)
    package = os.path.dirname(icpy_kernels.__file__)
    code = (
        "import os\n"
        f"for p in ['/etc/icpy-pwned', {os.path.join(package, 'pwned.py')!r}, '/usr/pwned', os.path.expanduser('~/../pwned')]:\n"
        "    try:\n        open(p, 'w').write('x'); print('WROTE', p)\n"
        "    except OSError as e: print('denied', e.errno)\n"
        "open('mine.txt', 'w').write('ok'); print('workspace', open('mine.txt').read())\n"
    )
    _, r = await alongside(attacker, innocent, code, session=ATK, innocent_session=INN)
    assert "workspace ok" in out(r), r
    # The workspace's parent is a private tmpfs inside the sandbox: writable there for a
    # server's own uid (its user namespace owns it), but nothing reaches the host.
    assert [line for line in out(r).splitlines() if line.startswith("WROTE")] in (
        [], [] if ROOT else [f"WROTE {report_workspace(server)}/../pwned"]), r
    assert "pwned.py" not in os.listdir(package) and "icpy-pwned" not in os.listdir("/etc")
    assert "pwned" not in os.listdir(os.path.dirname(report_workspace(server)))


async def test_server_environment_token_and_process_are_unreachable(server):
    attacker, innocent = await clients(server)
    code = (
        "import os, glob\n"
        f"try:\n    print('ENV', open('/proc/{os.getpid()}/environ').read()[:50])\n"
        "except OSError as e: print('environ', type(e).__name__)\n"
        "found = []\n"
        "for f in glob.glob('/proc/*/environ') + glob.glob('/proc/*/cmdline'):\n"
        "    try:\n        found.append(open(f, 'rb').read())\n"
        "    except OSError: pass\n"
        f"print('token seen', any({TOKEN!r}.encode() in b for b in found) or {TOKEN!r} in str(dict(os.environ)))\n"
        "print('ICPY vars', [k for k in os.environ if k.startswith('ICPY')])\n"
        f"try:\n    os.kill({os.getpid()}, 9); print('KILLED')\n"
        "except OSError as e: print('kill', type(e).__name__)\n"
        "try:\n    os.kill(os.getppid(), 9); print('parent', os.getppid())\n"
        "except OSError as e: print('kill parent', type(e).__name__)\n"
    )
    _, r = await alongside(attacker, innocent, code, session=ATK, innocent_session=INN)
    text = out(r)
    assert "ENV" not in text and "token seen False" in text and "ICPY vars []" in text, r
    assert "KILLED" not in text, r


async def test_symlink_to_etc_is_refused_as_working_directory(server):
    attacker, _ = await clients(server)
    _, r = await attacker.execute("import os\nos.path.islink('etc_link') or os.symlink('/etc', 'etc_link')",
                                  session_id=ATK)
    assert r["status"] == "completed", r
    _, err = await attacker.execute("print(open('passwd').read())", session_id=ATK,
                                    config={"working_directory": "etc_link"})
    assert err["type"] == "error" and err["field"] == "config.working_directory", err


async def test_unsandboxed_and_network_sessions_are_refused(server):
    attacker, _ = await clients(server)
    for config, field in (({"sandbox": False}, "config.sandbox"), ({"network": True}, "config.network")):
        _, err = await attacker.execute("1", session_id=f"refused-{field[7:]}", config=config)
        assert err["type"] == "error" and err["code"] == "forbidden", err
        assert err["field"] == field
    assert "refused-sandbox" not in server.sessions()
