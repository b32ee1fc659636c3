"""Our kernels leave on their own after a shutdown_request, as fast as ipykernel's python3."""

from __future__ import annotations

import asyncio
import contextlib
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
