"""Shared test setup: an isolated Jupyter runtime dir, bundled kernelspecs on JUPYTER_PATH,
and a check that no kernel process outlives the test session."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

_TEST_ROOT = Path(tempfile.mkdtemp(prefix="icpy-tests-"))
_RUNTIME_DIR = _TEST_ROOT / "runtime"
_JUPYTER_PATH = _TEST_ROOT / "jupyter"


def _setup_environment() -> None:
    # Kernels write their connection files here, so every kernel started by the suite
    # (in-process or by a server subprocess) carries this path on its command line: that
    # is how the leftover check below finds them.
    _RUNTIME_DIR.mkdir(parents=True)
    os.environ["JUPYTER_RUNTIME_DIR"] = str(_RUNTIME_DIR)
    from icpy_kernels.runtime.kernelspecs import bundled_kernelspecs_dir

    kernels = _JUPYTER_PATH / "kernels"
    kernels.mkdir(parents=True)
    for spec in bundled_kernelspecs_dir().iterdir():
        if (spec / "kernel.json").exists():
            (kernels / spec.name).symlink_to(spec)
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        [str(_JUPYTER_PATH), *filter(None, [os.environ.get("JUPYTER_PATH")])]
    )


_setup_environment()


# Command-line fragments of every kind of kernel process the suite can start, wherever its
# connection file lives (a bare KernelManager writes it to /tmp, not the runtime dir).
KERNEL_MARKERS = (b"ipykernel_launcher", b"icpy_kernels.kernels.", b"icpy_kernels/kernels/node/driver.js")


def _processes() -> dict[int, bytes]:
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Zombies are already dead; their parent just has not reaped them yet.
        if ") Z " not in stat:
            found[int(entry.name)] = cmdline
    return found


def _descends_from_us(pid: int) -> bool:
    """Whether ``pid`` is this test process's child, grandchild...: another suite running on
    the same machine at the same time has kernels too, and they are not ours to count."""
    me = os.getpid()
    for _ in range(64):
        if pid == me:
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if pid <= 1:
            return False
    return False


def kernel_processes(exclude: set[int] = frozenset()) -> list[tuple[int, str]]:
    """Live kernel processes: those naming the suite's runtime dir, and any other kernel-like
    process of ours (a descendant) not in ``exclude`` (running when the suite started)."""
    marker = str(_RUNTIME_DIR).encode()
    return [
        (pid, cmd.replace(b"\0", b" ").decode(errors="replace"))
        for pid, cmd in _processes().items()
        if marker in cmd or (pid not in exclude and any(m in cmd for m in KERNEL_MARKERS)
                             and _descends_from_us(pid))
    ]


@pytest.fixture(scope="session", autouse=True)
def no_leftover_kernels():
    """Fail the run if any kernel process started by the suite is still alive at the end."""
    before = {pid for pid, _ in kernel_processes()}
    yield
    deadline = time.monotonic() + 10
    while kernel_processes(before) and time.monotonic() < deadline:
        time.sleep(0.2)
    leftovers = kernel_processes(before)
    for pid, cmd in leftovers:
        if str(_RUNTIME_DIR) in cmd:  # surely ours: don't leave it running either
            try:
                os.kill(pid, 9)
            except OSError:
                pass
    assert not leftovers, f"kernel processes outlived the tests: {leftovers}"
