"""The launcher's ``supervise`` stage (tiers B and C without a dedicated uid): the kernel's
daemons stay its children and die with it, on SIGTERM or when the kernel exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from icpy_kernels.provisioning.policy import LAUNCHER

# A setsid'd, double-forked daemon (its pid on stdout), then the "kernel" waits.
KERNEL = "setsid sh -c 'sleep 600 & echo $!' ; exec sleep 600"


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return ") Z " not in f.read()
    except OSError:
        return False


def start(script: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-I", "-S", LAUNCHER, "outer,supervise,inner", "{}",
                             "--", "sh", "-c", script], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    daemon = int(proc.stdout.readline())
    assert alive(daemon)
    return proc, daemon


def gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def test_sigterm_kills_the_kernel_and_its_daemon():
    proc, daemon = start(KERNEL)
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    assert gone(daemon)


def test_an_interrupt_is_for_the_kernel_not_the_supervisor():
    proc, daemon = start(KERNEL)
    os.killpg(proc.pid, signal.SIGINT)  # what jupyter_client does: the whole group
    # sleep dies of SIGINT; the supervisor ignores it, reports the kernel's death, cleans up.
    assert proc.wait(10) == 128 + signal.SIGINT
    assert gone(daemon)


def test_kernel_exit_takes_its_daemon_along():
    proc, daemon = start("setsid sh -c 'sleep 600 & echo $!' ; sleep 1; exit 3")
    assert proc.wait(10) == 3
    assert gone(daemon)
