"""Sessions cannot reach the host's files or each other (issue 9, items 1-3, 5 and 9).

One server whose history database and kept workspaces live outside /tmp (where the issue's
tester put them), so that only the sandbox's view, not a tmpfs over /tmp, can hide them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile

import pytest

from ..integration.harness import Client, ThreadedServer
from .conftest import LIMITS, ROOT
from .helpers import innocent_check, out

pytestmark = pytest.mark.gen_test(timeout=120)
ATK, INN = "iso-attacker", "iso-innocent"


def outside_tmp() -> str:
    """A fresh directory on the host's disk, not under /tmp (a tier-A tmpfs would hide it)."""
    for base in ("/srv", "/var/lib", os.path.expanduser("~")):
        if os.path.isdir(base) and os.access(base, os.W_OK):
            return tempfile.mkdtemp(prefix="icpy-isolation-", dir=base)
    pytest.skip("no writable directory outside /tmp")


@pytest.fixture(scope="module")
def server():
    base = outside_tmp()
    os.chmod(base, 0o755)  # as an operator's /srv/icpy would be: the view must hide it
    srv = ThreadedServer(**LIMITS, db=os.path.join(base, "db", "history.sqlite3"),
                         workspace_root=os.path.join(base, "workspaces"), keep_workspaces=True).start()
    srv.base = base
    marker = os.path.join(base, "host-secret")
    with open(marker, "w") as f:
        f.write("host secret")
    os.chmod(marker, 0o644)  # world-readable on the host: only the view keeps kernels out
    yield srv
    srv.stop()
    shutil.rmtree(base, ignore_errors=True)


def kernel_of(srv, session_id: str):
    return srv.manager.sessions[session_id].handle.km


async def test_a_connection_file_swapped_for_a_symlink_reowns_nothing(server):
    """Item 1: the kernel replaces its connection file with a symlink to a root-only host
    file and dies; the restart must not chown that file to the kernel's uid."""
    fd, victim = tempfile.mkstemp(prefix="icpy-victim-", dir=server.base)
    os.close(fd)
    os.chmod(victim, 0o600)
    before = os.stat(victim)
    attacker = await Client.connect(server.url())
    code = (
        "import os\nfrom ipykernel import get_connection_file\ncf = get_connection_file()\n"
        "d = os.path.dirname(cf)\n"
        "for what, act in [('unlink', lambda: os.unlink(cf)),\n"
        f"                  ('symlink', lambda: os.symlink({victim!r}, cf)),\n"
        "                  ('write', lambda: open(cf, 'a').write('x')),\n"
        "                  ('chmod', lambda: os.chmod(cf, 0o666)),\n"
        "                  ('create', lambda: open(os.path.join(d, 'planted'), 'w').write('x'))]:\n"
        "    try:\n        act(); print('DID', what)\n"
        "    except OSError as e: print('refused', what, e.errno)\n"
    )
    _, attack = await attacker.execute(code, session_id=ATK)
    # Whatever it managed, it now dies and the server restarts it.
    await attacker.execute("import os\nos._exit(1)", session_id=ATK)
    _, r = await attacker.execute("print('back', 6 * 7)", session_id=ATK)
    after = os.stat(victim)
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (
        before.st_uid, before.st_gid, 0o600), "a host file was re-owned through the connection file"
    assert attack["status"] == "completed", attack
    assert not [w for w in ("unlink", "symlink", "write", "chmod") if f"DID {w}" in out(attack)], out(attack)
    # The directory may be a fresh one inside the sandbox's own /tmp (a non-root server's
    # runtime dir under /tmp): what counts is that nothing appeared on the host.
    assert "planted" not in os.listdir(os.path.dirname(kernel_of(server, ATK).connection_file))
    assert r["status"] == "completed" and "back 42" in out(r), r
    # Each start has a fresh connection file, the server's, readable by the kernel alone.
    km = kernel_of(server, ATK)
    st = os.stat(km.connection_file)
    assert st.st_uid == os.geteuid() and not stat.S_IMODE(st.st_mode) & 0o222 & ~0o200
    if ROOT:
        assert stat.S_IMODE(st.st_mode) == 0o440 and st.st_gid != 0
    assert not stat.S_IMODE(os.stat(os.path.dirname(km.connection_file)).st_mode) & 0o022
    attacker.close()


async def test_sessions_see_neither_each_other_nor_the_hosts_files(server):
    """Items 2 and 3: another session's connection file (its HMAC key) and workspace, the
    history database, the host's files and /sys/fs/cgroup are not in a kernel's view."""
    attacker, innocent = await Client.connect(server.url()), await Client.connect(server.url())
    await innocent_check(innocent, INN, budget=30)
    _, r = await innocent.execute("open('diary.txt', 'w').write('innocent secret')", session_id=INN)
    assert r["status"] == "completed", r
    victim = server.sessions()[INN]["sandbox"]["workspace"]
    targets = {
        "connection file": kernel_of(server, INN).connection_file,
        "workspace": os.path.join(victim, "diary.txt"),
        "history database": server.settings.db,
        "host file": os.path.join(server.base, "host-secret"),
        "cgroups": "/sys/fs/cgroup",
        "server cwd": os.path.join(os.getcwd(), "pyproject.toml"),
        "host accounts": "/etc/shadow",
    }
    code = "import os\n" + "".join(
        f"try:\n    open({path!r}, 'rb').read(1) if not os.path.isdir({path!r}) else os.listdir({path!r})\n"
        f"    print('READ', {name!r})\nexcept OSError as e: print('hidden', {name!r}, e.errno)\n"
        for name, path in targets.items())
    code += "print('passwd', sorted(l.split(':')[0] for l in open('/etc/passwd')))\n"
    _, r = await attacker.execute(code, session_id=ATK)
    assert r["status"] == "completed", r
    text = out(r)
    assert "READ" not in text, text
    assert all(f"hidden {name} " in text for name in targets), text
    assert "passwd ['nobody', 'root', 'sandbox']" in text, text
    await innocent_check(innocent, INN)
    attacker.close()
    innocent.close()


async def test_kernel_path_comes_from_the_view_not_the_servers_environment(server):
    """Item 9: the server's own PATH entries (pyenv shims, ~/.cargo/bin) stay out."""
    attacker = await Client.connect(server.url())
    code = ("import os\npath = os.environ['PATH'].split(':')\nprint('PATH', path)\n"
            "print('absent', [p for p in path if not os.path.isdir(p)])")
    _, r = await attacker.execute(code, session_id=ATK)
    assert r["status"] == "completed" and "absent []" in out(r), r
    server_only = [p for p in os.environ.get("PATH", "").split(":") if "shims" in p or ".cargo" in p]
    assert not [p for p in server_only if repr(p) in out(r)], out(r)
    attacker.close()


async def test_a_kept_workspace_goes_back_to_the_server_and_stays_unreadable(server):
    """Item 5: with --keep-workspaces and a root outside /tmp, a later session (leased the
    same uid, as the first free one) must not read the previous session's files."""
    client = await Client.connect(server.url())
    _, r = await client.execute("import os\nopen('kept.txt', 'w').write('earlier secret')\n"
                                "print('uid', os.getuid())", session_id="keeper")
    assert r["status"] == "completed", r
    workspace = server.sessions()["keeper"]["sandbox"]["workspace"]
    server.call(server.manager.shutdown_session("keeper"))
    st = os.stat(workspace)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (os.geteuid(), 0o700), st
    assert os.stat(os.path.join(workspace, "kept.txt")).st_uid == os.geteuid()
    _, r = await client.execute(
        f"import os\nprint('uid', os.getuid())\ntry:\n    print('READ', open({workspace + '/kept.txt'!r}).read())\n"
        "except OSError as e: print('hidden', e.errno)", session_id="later")
    assert r["status"] == "completed" and "READ" not in out(r) and "hidden" in out(r), r
    # The same session name gets its kept workspace back, files and all.
    _, r = await client.execute("print(open('kept.txt').read())", session_id="keeper")
    assert r["status"] == "completed" and "earlier secret" in out(r), r
    with contextlib.suppress(Exception):
        server.call(server.manager.shutdown_session("later"))
    client.close()
