"""Our kernels leave on their own after a shutdown_request, as fast as ipykernel's python3."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess

import pytest

from .driver import run, start_kernel

ROUNDS = 3
ON_ITS_OWN = 1.5  # seconds; jupyter_client would SIGTERM at 2.5


@pytest.mark.asyncio
@pytest.mark.parametrize(("kernel_name", "code"), [
    ("icpy-bash", "echo out; echo err >&2"),
    ("icpy-javascript", "console.log('out'); console.error('err')"),
])
async def test_the_kernel_process_exits_by_itself_soon_after_shutdown(kernel_name, code) -> None:
    for _ in range(ROUNDS):
        km, kc = await start_kernel(kernel_name)
        try:
            await run(kc, code)
            proc = km.provisioner.process  # type: ignore[union-attr]
            await km.request_shutdown()
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.wait, ON_ITS_OWN)
            assert proc.returncode == 0, f"still running {ON_ITS_OWN}s after shutdown_request"
        finally:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)


def _exits_within(pid: int, timeout: float) -> bool:
    """Wait for the process to exit (its pidfd becomes readable), not by polling."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


@pytest.mark.asyncio
@pytest.mark.parametrize(("kernel_name", "code"), [
    # bash itself and a background job in its process group
    ("icpy-bash", "sleep 600 & echo $$ $!"),
    # node (a busy main thread must not matter) and a child process it started
    ("icpy-javascript", "const c = require('child_process').spawn('sleep', ['600'], "
     "{stdio: 'ignore'}); console.log(process.pid, c.pid)"),
])
async def test_a_kernel_killed_by_sigterm_takes_its_children_with_it(kernel_name, code) -> None:
    km, kc = await start_kernel(kernel_name)
    try:
        pids = [int(p) for p in (await run(kc, code)).text().split()]
        proc = km.provisioner.process  # type: ignore[union-attr]
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 10)
        assert proc.returncode == -signal.SIGTERM  # still dies of SIGTERM, as before
        for pid in pids:
            assert _exits_within(pid, 5), f"{kernel_name}'s process {pid} outlived the kernel"
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
