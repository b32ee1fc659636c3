"""(c) Cold start: a new session's first execute to its result, kernel start included.

Bridge: a fresh WebSocket connection sends one ``execute`` to its default session (closing
the connection shuts that kernel down; the next run waits until it is gone). Bare: an
AsyncKernelManager starts the same kernelspec, ``wait_for_ready``, execute, reply + idle.
Runs alternate bare/bridge; kernels whose spec is missing are skipped.

    .venv/bin/python bench/startup.py [--runs 5] [--languages python,bash,javascript]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from benchlib import TOKEN, BareKernel, Bridge, save, server_process, table
from tornado.httpclient import AsyncHTTPClient

from icpy_kernels.runtime.kernelspecs import kernel_spec_manager

LANGUAGES = {  # language -> (kernelspec, trivial code)
    "python": ("python3", "1+1"),
    "bash": ("icpy-bash", "echo hi"),
    "javascript": ("icpy-javascript", "1+1"),
}


async def sessions(health: str) -> int:
    response = await AsyncHTTPClient().fetch(health)
    return json.loads(response.body)["sessions"]


async def bridge_once(url: str, health: str, language: str, code: str) -> float:
    bridge = await Bridge.connect(url)
    try:
        t0 = time.perf_counter()
        result = await bridge.execute(code, language=language)
        wall = time.perf_counter() - t0
        assert result["status"] == "completed", result
    finally:
        bridge.close()
    for _ in range(300):  # let the kernel go before the next run starts one
        if not await sessions(health):
            break
        await asyncio.sleep(0.1)
    return wall


async def bare_once(kernel: str, code: str) -> float:
    bare = BareKernel(kernel)
    t0 = time.perf_counter()
    try:
        await bare.start()
        reply = await bare.execute(code)
        wall = time.perf_counter() - t0
        assert reply["status"] == "ok", reply
    finally:
        await bare.stop()
    return wall


async def main(args: argparse.Namespace) -> dict[str, Any]:
    specs = kernel_spec_manager().find_kernel_specs()
    samples: dict[str, dict[str, list[float]]] = {}
    skipped = []
    async with server_process() as url:
        health = url.replace("ws://", "http://").split("/ws")[0] + f"/api/health?token={TOKEN}"
        for language in args.languages.split(","):
            kernel, code = LANGUAGES[language]
            if kernel not in specs:
                skipped.append(f"{language} (no kernelspec {kernel!r})")
                continue
            samples[language] = {"bare": [], "bridge": []}
            for i in range(args.runs):
                for who in (("bare", "bridge") if i % 2 == 0 else ("bridge", "bare")):
                    try:
                        wall = await (bare_once(kernel, code) if who == "bare"
                                      else bridge_once(url, health, language, code))
                    except Exception as exc:  # a kernel still being written may fail: report, go on
                        print(f"  {language} {who} run {i}: FAILED {exc!r}")
                        continue
                    samples[language][who].append(wall)
                    print(f"  {language:<11} {who:<6} {wall:6.3f} s", flush=True)
    rows = []
    for language, by in samples.items():
        base = statistics.median(by["bare"]) if by["bare"] else float("nan")
        for who, values in by.items():
            if values:
                med = statistics.median(values)
                rows.append([language, LANGUAGES[language][0], who, len(values), med, min(values), max(values),
                             med / base])
    print(f"\nFirst execute of a new session -> result, kernel start included (s, {args.runs} runs each)")
    print(table(["language", "kernelspec", "client", "runs", "median", "min", "max", "× bare"], rows))
    for s in skipped:
        print(f"skipped: {s}")
    return {"samples": samples, "skipped": skipped}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--languages", default="python,bash,javascript")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    data = asyncio.run(main(args))
    if not args.no_save:
        print(f"saved {save('startup', data)}")
