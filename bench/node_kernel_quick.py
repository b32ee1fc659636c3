"""Quick figures for the Node kernel: warm `1+1` round-trip latency and stdout throughput."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

from jupyter_client import AsyncKernelManager

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import conftest  # noqa: E402,F401  (puts the bundled kernelspecs on JUPYTER_PATH)


async def run(kc, code: str, timeout: float = 120) -> tuple[dict, int, float | None]:
    """Execute; return (reply content, stdout bytes received, time of the first stdout)."""
    msg_id = kc.execute(code)
    nbytes, first = 0, None
    while True:
        msg = await kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            nbytes += len(msg["content"]["text"].encode())
            first = first or time.perf_counter()
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    reply = await kc.get_shell_msg(timeout=timeout)
    return reply["content"], nbytes, first


async def main() -> None:
    km = AsyncKernelManager(kernel_name="icpy-javascript")
    await km.start_kernel()
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=30)
    try:
        for _ in range(20):
            await run(kc, "1+1")
        times = []
        for _ in range(200):
            t0 = time.perf_counter()
            await run(kc, "1+1")
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        print(f"1+1 round trip: median {statistics.median(times):.2f} ms, p99 {times[197]:.2f} ms")
        t0 = time.perf_counter()
        _, nbytes, _ = await run(kc, "for (let i = 0; i < 2000000; i++) console.log(i)")
        dt = time.perf_counter() - t0
        print(
            f"2M console.log lines: {nbytes / 1e6:.1f} MB in {dt:.2f} s = {nbytes / 1e6 / dt:.1f} MB/s"
        )
    finally:
        kc.stop_channels()
        await km.shutdown_kernel()


if __name__ == "__main__":
    asyncio.run(main())
