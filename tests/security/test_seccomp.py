"""The launcher's seccomp filter in real kernels on each tier this machine runs (A, and B and C
forced; a root server skips B and C when its Python is unreachable to the kernel's uid): what
it denies, and that python, bash and javascript kernels still start and run under it."""

from __future__ import annotations

import pytest

from icpy_kernels.provisioning.probe import probe

from ..integration.harness import Client, ThreadedServer
from .conftest import LIMITS
from .helpers import out, unreachable

pytestmark = pytest.mark.gen_test(timeout=120)

PYTHON = """
import ctypes, os, socket
libc = ctypes.CDLL(None, use_errno=True)
print('mode', [l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')][0])
for name, kind, proto in (('AF_PACKET', 2, 0), ('AF_VSOCK', 1, 0), ('AF_ALG', 5, 0),
                          ('AF_NETLINK', 3, 4)):  # netlink sock_diag (route is allowed)
    try:
        socket.socket(getattr(socket, name), kind, proto)
        print(name, 'created')
    except OSError as e:
        print(name, type(e).__name__, e.errno)
socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close()
a, b = socket.socketpair(); a.send(b'x'); print('unix', b.recv(1))
for call, args in (('ptrace', (0, 0, 0, 0)), ('unshare', (0x10000000,)), ('setns', (0, 0)),
                   ('mount', (b'none', b'/tmp', b'tmpfs', 0, None)), ('syscall', (321, 0, 0, 0))):
    rc = getattr(libc, call)(*args)
    print(call, rc, os.strerror(ctypes.get_errno()))
pid = os.fork()
if pid == 0:
    os._exit(3)
print('fork', os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


@pytest.fixture(scope="module", params=["bwrap", "landlock", "rlimits"])
def tier_server(request):
    """Isolated sessions on every tier: with seccomp, tier C can isolate them too."""
    srv = ThreadedServer(**{**LIMITS, "sandbox": "auto"}, sandbox_tier=request.param).start()
    caps = srv.call(probe())
    skip = (None if caps.seccomp else f"no seccomp filter here: {caps.seccomp_error}") or \
        (None if request.param in caps.tiers else f"tier {request.param!r} is not available here") or \
        unreachable(request.param)
    if skip:
        srv.stop()
        pytest.skip(skip)
    yield srv
    srv.stop()


async def test_python_kernel_is_filtered(tier_server):
    client = await Client.connect(tier_server.url())
    _, r = await client.execute(PYTHON, session_id="seccomp-py", timeout=60)
    text = out(r)
    assert r.get("status") == "completed", r
    report = tier_server.sessions()["seccomp-py"]["sandbox"]
    assert report["seccomp"]["enabled"] is True, report
    if report["tier"] == "bwrap":  # IP reaches only the sandbox's own, empty namespace
        assert report["seccomp"]["socket_families"] == ["unix", "inet", "inet6", "netlink_route"]
    else:
        assert report["seccomp"]["socket_families"] == ["unix", "netlink_route"], report
    assert "mode 2" in text, text  # SECCOMP_MODE_FILTER
    for family in ("AF_PACKET", "AF_NETLINK", "AF_VSOCK", "AF_ALG"):
        assert f"{family} PermissionError 13" in text, text
    assert "unix b'x'" in text and "fork 3" in text, text
    for call in ("ptrace", "unshare", "setns", "mount", "syscall"):  # syscall 321: bpf()
        assert f"{call} -1 Operation not permitted" in text, text
    client.close()


async def test_bash_and_javascript_kernels_run_filtered(tier_server):
    client = await Client.connect(tier_server.url())
    _, r = await client.execute(
        "grep '^Seccomp:' /proc/self/status; (echo sub $((6*7))) | cat; unshare -U true || echo unshare denied",
        language="bash", session_id="seccomp-bash", timeout=60)
    assert r.get("status") == "completed", r
    text = out(r)
    assert "Seccomp:\t2" in text and "sub 42" in text and "unshare denied" in text, text
    _, r = await client.execute(
        "const fs = require('fs');\n"
        "console.log(fs.readFileSync('/proc/self/status', 'utf8').split('\\n').find(l => l.startsWith('Seccomp:')));\n"
        "const { execFileSync } = require('child_process');\n"
        "console.log(execFileSync('sh', ['-c', 'echo child ok']).toString().trim());\n"
        "await new Promise(r => setTimeout(r, 10)); console.log('timers ok');\n",
        language="javascript", session_id="seccomp-js", timeout=60)
    assert r.get("status") == "completed", r
    text = out(r)
    assert "Seccomp:\t2" in text and "child ok" in text and "timers ok" in text, text
    client.close()
