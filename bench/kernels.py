"""(d) Our kernels vs their reference kernels, each beside the bare python3 kernel.

Warm latency: ``echo hi`` on icpy-bash vs bash_kernel, ``1+1`` on icpy-javascript vs the
Deno kernel, and ``1+1`` on ipykernel, all through bare jupyter_client (interleaved rounds),
plus the same three languages through the bridge. Throughput: 2M lines of stdout (``seq``,
a Node loop, a Python loop) with every byte checked, bare and through a bridge whose
output cap is raised. Reference kernels that are not installed are skipped:
``bash_kernel`` is a benchmark-only ``pip install bash_kernel`` (not a project dependency;
its spec is written to a private directory so the bridge never picks it for ``bash``);
Deno is used when ``deno`` is on PATH.

    .venv/bin/python bench/kernels.py [-n 200] [--skip-throughput] [--skip-latency]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchlib import BareKernel, Bridge, save, server_process, summary_ms, table
from streaming import RAISED_LIMIT, Case, lines, run_bare, run_bridge

from icpy_kernels.runtime.kernelspecs import kernel_spec_manager

# name -> (kernelspec, bridge language or None, warm code, 2M-lines code, expected text)
KERNELS: dict[str, tuple[str, str | None, str, str, str]] = {
    "ipykernel": ("python3", "python", "1+1", "for i in range(2000000): print(i)", "py"),
    "icpy-bash": ("icpy-bash", "bash", "echo hi", "seq 1 2000000", "seq"),
    "bash_kernel": ("bench-bash_kernel", None, "echo hi", "seq 1 2000000", "seq"),
    "icpy-javascript": ("icpy-javascript", "javascript", "1+1",
                        "for (let i = 0; i < 2000000; i++) console.log(i)", "py"),
    "deno": ("bench-deno", None, "1+1", "for (let i = 0; i < 2000000; i++) console.log(i)", "py"),
}


def private_specs() -> tuple[str, list[str]]:
    """Write kernel.json for the reference kernels that are installed; return (dir, skipped)."""
    root = Path(tempfile.mkdtemp(prefix="icpy-bench-kernels-"))
    skipped = []
    if importlib.util.find_spec("bash_kernel") is not None:
        spec = {"argv": [sys.executable, "-m", "bash_kernel", "-f", "{connection_file}"],
                "display_name": "Bash (bash_kernel)", "language": "bash"}
        (root / "bench-bash_kernel").mkdir()
        (root / "bench-bash_kernel" / "kernel.json").write_text(json.dumps(spec))
    else:
        skipped.append("bash_kernel (not installed: .venv/bin/pip install bash_kernel)")
    deno = shutil.which("deno")
    if deno:
        spec = {"argv": [deno, "jupyter", "--kernel", "--conn", "{connection_file}"],
                "display_name": "Deno", "language": "typescript"}
        (root / "bench-deno").mkdir()
        (root / "bench-deno" / "kernel.json").write_text(json.dumps(spec))
    else:
        skipped.append("deno (no deno on PATH)")
    return str(root), skipped


async def timed(fn: Callable[[], Awaitable[object]], n: int, out: list[float]) -> None:
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t0)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    spec_dir, skipped = private_specs()
    known = kernel_spec_manager().find_kernel_specs()
    present = {}
    for name, (spec, *_rest) in KERNELS.items():
        if spec in known or (Path(spec_dir) / spec).is_dir():
            present[name] = KERNELS[name]
        elif not spec.startswith("bench-"):
            skipped.append(f"{name} (no kernelspec {spec!r})")
    out: dict[str, Any] = {"skipped": skipped}
    async with contextlib.AsyncExitStack() as stack:
        bares: dict[str, BareKernel] = {}
        for name, (spec, *_rest) in present.items():
            try:
                bares[name] = await BareKernel(spec, extra_dirs=(spec_dir,)).start()
                stack.push_async_callback(bares[name].stop)
            except Exception as exc:
                skipped.append(f"{name} (failed to start: {exc!r})")
        url = await stack.enter_async_context(server_process("--max-output-size", str(RAISED_LIMIT)))
        bridge = await Bridge.connect(url)
        stack.callback(bridge.close)

        if not args.skip_latency:
            modes: dict[str, Callable[[], Awaitable[object]]] = {}
            for name, bare in bares.items():
                code = KERNELS[name][2]

                async def run(bare: BareKernel = bare, code: str = code) -> None:
                    assert (await bare.execute(code))["status"] == "ok"

                modes[f"bare {name}: {code}"] = run
            for name, (_spec, language, code, *_rest) in present.items():
                if language is None or name not in bares:
                    continue

                async def run_b(language: str = language, code: str = code) -> None:
                    result = await bridge.execute(code, language=language, session_id=f"k-{language}")
                    assert result["status"] == "completed", result

                modes[f"bridge {language}: {code}"] = run_b
            samples: dict[str, list[float]] = {m: [] for m in modes}
            for fn in modes.values():
                await timed(fn, args.warmup, [])
            for _ in range(args.rounds):
                for m, fn in modes.items():
                    await timed(fn, args.n // args.rounds, samples[m])
            stats = {m: summary_ms(s) for m, s in samples.items()}
            base = stats.get("bare ipykernel: 1+1", {}).get("median", float("nan"))
            rows = [[m, s["n"], s["median"], s["p90"], s["p99"], s["median"] / base] for m, s in stats.items()]
            print(f"\nWarm round trip per kernel, ms (N={args.n}, {args.rounds} interleaved rounds)")
            print(table(["mode", "n", "median", "p90", "p99", "× bare ipykernel median"], rows))
            out["latency"] = stats

        if not args.skip_throughput:
            expected = {"py": lines(2_000_000), "seq": "".join(f"{i}\n" for i in range(1, 2_000_001))}
            runs = []
            for name, (_spec, language, _code, big, kind) in present.items():
                if name not in bares:
                    continue
                if name == "bash_kernel" and not args.slow:
                    skipped.append("bash_kernel throughput (~4 min; --slow runs it)")
                    continue
                case = Case(f"{name}: {big}", big, expected[kind])
                run = await run_bare(bares[name], case)
                runs.append([name, "bare", run])
                print(f"  {name:<16} bare   {run['wall']:7.3f} s  {run['bytes']:>9} B  {run['check']}", flush=True)
                if language is not None:
                    run = await run_bridge(bridge, case, f"k-{language}", RAISED_LIMIT, language)
                    runs.append([name, "bridge", run])
                    print(f"  {name:<16} bridge {run['wall']:7.3f} s  {run['bytes']:>9} B  {run['check']}",
                          flush=True)
            py = next((r["wall"] for n, w, r in runs if n == "ipykernel" and w == "bare"), float("nan"))
            rows = [[n, w, len(expected[KERNELS[n][4]].encode()), r["bytes"],
                     r["check"], r["messages"], r["wall"], r["bytes"] / r["wall"] / 1e6, py / r["wall"]]
                    for n, w, r in runs]
            print("\n2M lines of stdout, bytes checked exactly (bridge output cap raised to 64 MiB)")
            print(table(["kernel", "client", "bytes expected", "bytes received", "check", "msgs", "wall s",
                         "MB/s", "MB/s × bare ipykernel"], rows))
            out["throughput"] = [{"kernel": n, "client": w, **r} for n, w, r in runs]
    for s in skipped:
        print(f"skipped: {s}")
    shutil.rmtree(spec_dir, ignore_errors=True)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--slow", action="store_true", help="also bash_kernel's 2M lines (minutes)")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    data = asyncio.run(main(args))
    if not args.no_save:
        print(f"saved {save('kernels', data)}")
