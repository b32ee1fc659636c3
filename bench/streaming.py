"""(b) Streaming stdout to a WebSocket client vs a bare jupyter_client reading IOPub.

Every byte is checked: stdout is rebuilt from the ``execution_update`` stream events (and,
for the bare client, from IOPub ``stream`` messages) and compared exactly with the text the
code prints. A cut at ``max_output_size`` must be an exact prefix with ``truncated: true``
and the stderr notice. Bare and bridge runs alternate.

    .venv/bin/python bench/streaming.py [--cases 200k,2M,2M-raised,burst] [--repeat 3]
    .venv/bin/python bench/streaming.py --cases 200k --profile   # cProfile the server
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pstats
import statistics
import time
from dataclasses import dataclass
from typing import Any

from benchlib import RESULTS, BareKernel, Bridge, save, server_process, table

DEFAULT_LIMIT = 10 * 1024 * 1024
RAISED_LIMIT = 64 * 1024 * 1024


@dataclass
class Case:
    name: str
    code: str
    expected: str
    raised: bool = False  # run on the server started with --max-output-size RAISED_LIMIT
    language: str = "python"  # bridge only: the bare client always runs python3


def lines(n: int) -> str:
    return "".join(f"{i}\n" for i in range(n))


CASES = {
    "200k": Case("200k lines", "for i in range(200000): print(i)", lines(200_000)),
    "2M": Case("2M lines (default 10 MiB cap)", "for i in range(2000000): print(i)", lines(2_000_000)),
    "2M-raised": Case("2M lines (cap raised to 64 MiB)", "for i in range(2000000): print(i)",
                      lines(2_000_000), raised=True),
    "burst": Case("10 MB burst, 200 x 50 kB lines", "for i in range(200): print('x'*50000)",
                  ("x" * 50000 + "\n") * 200),
    # Bridge only (the bare client runs python3): the server's path when a kernel is fast.
    "bash-2M": Case("bash seq 1 2000000 (cap raised)", "seq 1 2000000",
                    "".join(f"{i}\n" for i in range(1, 2_000_001)), raised=True, language="bash"),
}


def check(case: Case, stdout: str, truncated: bool, limit: int | None, stderr: str) -> str:
    """'exact' / 'exact prefix + notice' / a description of what is wrong."""
    if stdout == case.expected and not truncated:
        return "exact"
    if truncated and limit is not None:
        budget = case.expected.encode()[:limit].decode("utf-8", "ignore")
        notice = "output truncated" in stderr
        if stdout == budget and notice:
            return "exact prefix + notice"
        return f"BAD cut: got {len(stdout)} chars, expected {len(budget)}; notice={notice}"
    common = next((i for i, (a, b) in enumerate(zip(stdout, case.expected, strict=False)) if a != b),
                  min(len(stdout), len(case.expected)))
    return f"MISMATCH at char {common}: {len(stdout)} vs {len(case.expected)} chars, truncated={truncated}"


async def run_bare(bare: BareKernel, case: Case) -> dict[str, Any]:
    chunks: dict[str, list[str]] = {"stdout": [], "stderr": []}
    messages = 0
    t_last = 0.0

    def on_stream(name: str, text: str) -> None:
        nonlocal messages, t_last
        messages += 1
        t_last = time.perf_counter()
        chunks.setdefault(name, []).append(text)

    t0 = time.perf_counter()
    reply = await bare.execute(case.code, on_stream)
    wall = time.perf_counter() - t0
    stdout = "".join(chunks["stdout"])
    return {"who": "bare", "wall": wall, "to_last_stream": (t_last or t0) - t0, "bytes": len(stdout.encode()), "truncated": False,
            "check": check(case, stdout, False, None, "".join(chunks["stderr"])), "messages": messages,
            "status": reply["status"], "result_frame": 0}


async def run_bridge(bridge: Bridge, case: Case, session: str, limit: int,
                     language: str = "python") -> dict[str, Any]:
    chunks: dict[str, list[str]] = {"stdout": [], "stderr": []}
    seqs: list[int] = []
    t_last = 0.0

    def on_event(event: dict[str, Any]) -> None:
        nonlocal t_last
        if event["type"] == "execution_update":
            seqs.append(event["seq"])
            update = event["update"]
            if update["kind"] == "stream":
                chunks.setdefault(update["name"], []).append(update["text"])
                t_last = time.perf_counter()

    t0 = time.perf_counter()
    result = await bridge.execute(case.code, streaming=True, on_event=on_event, session_id=session,
                                  language=language, config={"timeout": 600})
    wall = time.perf_counter() - t0
    stdout = "".join(chunks["stdout"])
    verdict = check(case, stdout, result["truncated"], limit, "".join(chunks["stderr"]))
    if seqs != list(range(1, len(seqs) + 1)):
        verdict += " (seq gap!)"
    # The result repeats the output; it must agree with the stream.
    if "".join(o["text"] for o in result["outputs"] if o.get("name") == "stdout") != stdout:
        verdict += " (result.outputs differs from stream!)"
    return {"who": "bridge", "wall": wall, "to_last_stream": (t_last or t0) - t0,
            "bytes": len(stdout.encode()), "truncated": result["truncated"], "check": verdict,
            "messages": len(seqs), "status": result["status"], "result_frame": bridge.last_frame_bytes}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    cases = [CASES[c] for c in args.cases.split(",")]
    runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in cases}
    profile = str(RESULTS / "server.prof") if args.profile else None
    async with contextlib.AsyncExitStack() as stack:
        bare = await BareKernel().start()
        stack.push_async_callback(bare.stop)
        url = await stack.enter_async_context(server_process(profile=profile))
        bridge = await Bridge.connect(url)
        stack.callback(bridge.close)
        raised_bridge = None
        if any(c.raised for c in cases):
            raised_url = await stack.enter_async_context(
                server_process("--max-output-size", str(RAISED_LIMIT),
                               profile=profile and profile.replace(".prof", "-raised.prof")))
            raised_bridge = await Bridge.connect(raised_url)
            stack.callback(raised_bridge.close)
            await raised_bridge.execute("1+1", session_id="stream")
        await bridge.execute("1+1", session_id="stream")
        await bare.execute("1+1")
        for case in cases:
            repeat = args.repeat if len(case.expected) < 5_000_000 else args.repeat_large
            for i in range(repeat):
                order = ("bare", "bridge") if i % 2 == 0 else ("bridge", "bare")
                for who in order:
                    if who == "bare":
                        if case.language != "python":
                            continue
                        run = await run_bare(bare, case)
                    elif case.raised:
                        run = await run_bridge(raised_bridge, case, f"stream-{case.language}", RAISED_LIMIT,
                                               case.language)
                    else:
                        run = await run_bridge(bridge, case, "stream", DEFAULT_LIMIT)
                    runs[case.name].append(run)
                    print(f"  {case.name:<34} {who:<6} {run['wall']:7.3f} s  {run['bytes']:>9} B  {run['check']}",
                          flush=True)

    rows = []
    summary: dict[str, Any] = {}
    for case in cases:
        expected = len(case.expected.encode())
        bares = [r["wall"] for r in runs[case.name] if r["who"] == "bare"]
        base = statistics.median(bares) if bares else float("nan")
        for who in ("bare", "bridge"):
            mine = [r for r in runs[case.name] if r["who"] == who]
            if not mine:
                continue
            wall = statistics.median(r["wall"] for r in mine)
            last = mine[-1]
            checks = sorted({r["check"] for r in mine})
            tail = statistics.median(r["wall"] - r["to_last_stream"] for r in mine)
            rows.append([case.name, who, len(mine), expected, last["bytes"], str(last["truncated"]).lower(),
                         "; ".join(checks), last["messages"], wall, tail, last["bytes"] / wall / 1e6, wall / base])
            summary[f"{case.name} / {who}"] = {"expected": expected, "runs": mine, "median_wall": wall}
    print("\nStreaming stdout: bridge (execute_streaming over WebSocket) vs bare jupyter_client IOPub")
    print(table(["case", "client", "runs", "bytes expected", "bytes received", "truncated", "check",
                 "msgs", "wall s (median)", "after last byte s", "MB/s", "× bare"], rows))
    for case in cases:
        if case.name == CASES["200k"].name:
            ratio = summary[f"{case.name} / bridge"]["median_wall"] / summary[f"{case.name} / bare"]["median_wall"]
            print(f"target: 200k lines within 10% of bare: ×{ratio:.3f} -> {'MET' if ratio <= 1.10 else 'MISSED'}")
    frames = {c.name: [r["result_frame"] for r in runs[c.name] if r["who"] == "bridge"][-1] for c in cases}
    print("final execution_result frame size (bytes): " + ", ".join(f"{k}: {v}" for k, v in frames.items()))
    return {"cases": summary, "profile": profile}


def show_profile(path: str) -> None:
    stats = pstats.Stats(path)
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats("icpy_kernels|tornado/websocket|json", 25)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="200k,2M,2M-raised,burst", help=f"comma list of {', '.join(CASES)}")
    parser.add_argument("--repeat", type=int, default=3, help="runs per client for cases < 5 MB (default 3)")
    parser.add_argument("--repeat-large", type=int, default=1, help="runs per client for larger cases (default 1)")
    parser.add_argument("--profile", action="store_true", help="run the server under cProfile and print it")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    started = time.time()
    data = asyncio.run(main(args))
    if args.profile:
        for path in (data["profile"], data["profile"].replace(".prof", "-raised.prof")):
            if os.path.exists(path) and os.path.getmtime(path) >= started:
                show_profile(path)
    if not args.no_save:
        print(f"saved {save('streaming', data)}")
