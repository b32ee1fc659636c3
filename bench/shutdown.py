"""How fast each kernel goes away after a shutdown request, and whether it had to be killed.

For python3 (ipykernel), icpy-bash and icpy-javascript, ``-n`` times: start the kernel with bare
jupyter_client (no sandbox, no bridge), run one cell that prints, then time
``AsyncKernelManager.shutdown_kernel()`` -- a shutdown_request, then up to half of
``shutdown_wait_time`` (5 s: 2.5 s) for the process to exit on its own, then SIGTERM, then
SIGKILL. Reports the median and max time and how many exits needed SIGTERM or SIGKILL (from
the process's return code).

    .venv/bin/python bench/shutdown.py [-n 20] [--kernels python3,icpy-bash,icpy-javascript]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import time

from jupyter_client.manager import AsyncKernelManager

from icpy_kernels.runtime.channels import KernelClient
from icpy_kernels.runtime.kernelspecs import kernel_spec_manager

CELL = {"python3": "print('x' * 100)", "icpy-bash": "echo hi; echo err >&2",
        "icpy-javascript": "console.log('hi'); console.error('err')"}


async def one(name: str) -> tuple[float, int | None]:
    km = AsyncKernelManager(kernel_name=name, kernel_spec_manager=kernel_spec_manager(),
                            client_factory=KernelClient)
    await km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=30)
        await kc.execute_interactive(CELL[name], timeout=30, output_hook=lambda msg: None)
    finally:
        kc.stop_channels()
    proc = km.provisioner.process  # type: ignore[union-attr]
    started = time.monotonic()
    await km.shutdown_kernel()
    return time.monotonic() - started, proc.returncode


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20)
    parser.add_argument("--kernels", default="python3,icpy-bash,icpy-javascript")
    args = parser.parse_args()
    print(f"{'kernel':16} {'median':>8} {'max':>8} {'SIGTERM':>8} {'SIGKILL':>8} {'other':>6}")
    for name in args.kernels.split(","):
        times, codes = [], []
        for _ in range(args.n):
            took, code = await one(name)
            times.append(took)
            codes.append(code)
        term = codes.count(-signal.SIGTERM)
        kill = codes.count(-signal.SIGKILL)
        other = sum(1 for c in codes if c not in (0, -signal.SIGTERM, -signal.SIGKILL))
        print(f"{name:16} {statistics.median(times):7.3f}s {max(times):7.3f}s "
              f"{term:8} {kill:8} {other:6}  codes={sorted(set(codes), key=str)}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
