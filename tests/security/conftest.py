"""One sandboxed server per module, with small limits so attacks end fast.

The suite runs as root (each kernel gets a dedicated uid from UID_RANGE) and as an ordinary
user (each kernel keeps the server's uid inside its own user and pid namespaces): the
``sandbox_members`` helper finds a kernel's processes either way."""

from __future__ import annotations

import os
import time

import pytest

from icpy_kernels.provisioning.uids import parse_range, processes_of

from ..integration.harness import ThreadedServer

ROOT = os.geteuid() == 0
UID_RANGE = "3001000-3001099"  # apart from other suites' kernels running at the same time
LIMITS = dict(
    sandbox="require", sandbox_uid_range=UID_RANGE, memory_limit=512 << 20, process_limit=64,
    file_size_limit=8 << 20, disk_quota=16 << 20, max_output_size=64 << 10,
    max_message_size=1 << 20, interrupt_grace=2.0, default_timeout=20.0,
)


def sandboxed_server(**settings):
    """Body of a module's ``server`` fixture (``yield from`` it): LIMITS plus ``settings``."""
    srv = ThreadedServer(**LIMITS, **settings).start()
    yield srv
    srv.stop()
    if not ROOT:
        return  # each kernel's pid namespace died with its bwrap: tests check it per session
    # Whatever an attack left behind died with its session: no process of a sandbox uid.
    uids = parse_range(UID_RANGE)
    deadline = time.monotonic() + 10
    while processes_of(uids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not processes_of(uids), f"sandbox processes outlived the server: {processes_of(uids)}"


@pytest.fixture(scope="module")
def server():
    yield from sandboxed_server()
