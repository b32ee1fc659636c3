"""Paths a kernel controls: a symlink it makes is no oracle for the server's own file system."""

from __future__ import annotations

import json
import os

import pytest

from ..integration.harness import Client
from .conftest import sandboxed_server
from .helpers import out

pytestmark = pytest.mark.gen_test(timeout=120)
ATK = "attacker"

# Links the kernel makes in its workspace: to the server's cwd as the host sees it (/proc/self
# is the server there), to one of the server's descriptors, in a loop, and up out of it.
LINKS = ("import os\n"
         "os.symlink('/proc/self/cwd', 'me')\nos.symlink('/proc/self/fd/1', 'fd')\n"
         "os.symlink('b', 'a')\nos.symlink('a', 'b')\nos.symlink('../../../..', 'up')\n"
         "os.mkdir('plain')\nos.symlink('plain', 'inside')\nprint('made')")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The suite's sandboxed server, with a history file: one more server path not to leak."""
    db = tmp_path_factory.mktemp("server-state") / "history.sqlite3"
    yield from sandboxed_server(db=str(db))


async def test_kernel_made_symlinks_are_refused_without_naming_server_paths(server):
    attacker = await Client.connect(server.url())
    _, r = await attacker.execute(LINKS, session_id=ATK)
    assert out(r) == "made", r
    leaks = (os.getcwd(), server.settings.db, "/proc")
    for name in ("me", "fd", "me/x", "a", "up", "plain/../up"):
        _, err = await attacker.execute("print('ran')", session_id=ATK, timeout=30,
                                        config={"working_directory": name})
        assert (err["type"], err["code"], err["field"]) == \
            ("error", "validation_error", "config.working_directory"), err
        for leak in leaks:
            assert leak not in json.dumps(err), (leak, err)
    assert "too many levels of symbolic links" in (await attacker.execute(
        "1", session_id=ATK, config={"working_directory": "a"}))[1]["message"]

    # Capped before any walk; and a link that stays inside still works.
    _, err = await attacker.execute("1", session_id=ATK, config={"working_directory": "d/" * 2049})
    assert (err["code"], err["field"]) == ("validation_error", "config.working_directory"), err
    _, r = await attacker.execute("import os\nprint(os.path.basename(os.getcwd()))", session_id=ATK,
                                  config={"working_directory": "inside"})
    assert out(r) == "plain", r
