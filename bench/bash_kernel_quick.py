"""Quick icpy-bash numbers: warm `echo hi` round trip (median/p99) and `seq` throughput."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager

SPEC_DIR = Path(__file__).resolve().parent.parent / "kernelspecs"


async def execute(kc, code: str) -> tuple[dict, str]:
    """Run code; wait for both the reply and the idle status; return (reply, stdout)."""
    mid = kc.execute(code)
    out: list[str] = []

    async def iopub() -> None:
        while True:
            msg = await kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != mid:
                continue
            if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
                out.append(msg["content"]["text"])
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return

    async def shell() -> dict:
        while True:
            msg = await kc.get_shell_msg(timeout=60)
            if msg["parent_header"].get("msg_id") == mid:
                return msg

    _, reply = await asyncio.gather(iopub(), shell())
    return reply, "".join(out)


async def main(runs: int = 200) -> None:
    ksm = KernelSpecManager()
    ksm.kernel_dirs = [str(SPEC_DIR), *ksm.kernel_dirs]
    km = AsyncKernelManager(kernel_name="icpy-bash", kernel_spec_manager=ksm)
    await km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=30)
        for _ in range(20):  # warm up
            await execute(kc, "echo hi")
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            await execute(kc, "echo hi")
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(
            f"echo hi round trip over {runs}: median {statistics.median(times):.2f} ms, p99 {p99:.2f} ms"
        )
        for n in (2_000_000,):
            t = time.perf_counter()
            _, out = await execute(kc, f"seq 1 {n}")
            dt = time.perf_counter() - t
            ok = out == "".join(f"{i}\n" for i in range(1, n + 1))
            print(
                f"seq 1 {n}: {len(out) / 1e6:.1f} MB in {dt:.2f} s = {len(out) / dt / 1e6:.0f} MB/s (intact: {ok})"
            )
    finally:
        kc.stop_channels()
        await km.shutdown_kernel()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
