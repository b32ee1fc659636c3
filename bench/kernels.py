"""(d) Our kernels vs their reference kernels, each beside the bare python3 kernel.

Warm latency: ``echo hi`` on icpy-bash vs bash_kernel, ``1+1`` on icpy-javascript vs the
Deno kernel, and ``1+1`` on ipykernel, all through bare jupyter_client (interleaved rounds),
plus the same through the bridge (Deno as ``kernel:bench-deno``). Throughput: 2M lines of
stdout (``seq``, a Node/Deno loop, a Python loop) with every byte checked, bare and through
a bridge whose output cap is raised. Interrupt: ``let probe = 42``, interrupt a
``while (true) {}`` after 1 s, read ``probe`` -- icpy-javascript vs Deno (its own spec, which
interrupts by SIGINT, and the same spec with ``interrupt_mode: message``).

Reference kernels that are not installed are skipped. Neither is a project dependency and
their specs are written to a private temp directory (on the bridge's JUPYTER_PATH for this
run only), so no installed kernel list changes: ``bash_kernel`` is ``pip install
bash_kernel``; Deno is ``--deno PATH``, else ``$DENO``, else ``deno`` on PATH (``npm i deno``
in a scratch directory brings the binary in ``node_modules/@deno/linux-x64-glibc/deno``).

    .venv/bin/python bench/kernels.py [-n 200] [--kernels deno,icpy-javascript,ipykernel]
        [--skip-latency] [--skip-throughput] [--skip-interrupt] [--slow] [--deno PATH] [--sandbox off]

Deno's kernel speaks tcp only and the sandbox connects kernels over ipc, so Deno runs through
the bridge only on a server started with ``--sandbox off`` (then every bridged kernel is unsandboxed).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import importlib.util
import json
import os
import queue
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
    "deno": ("bench-deno", "kernel:bench-deno", "1+1",
             "for (let i = 0; i < 2000000; i++) console.log(i)", "py"),
}
# 2M lines that take minutes (one IOPub message per line): only with --slow.
SLOW = {"bash_kernel": "~4 min", "deno": "~80 s"}
# Interrupt probe: name -> kernelspec (bare) and bridge language or None.
INTERRUPT = {
    "icpy-javascript": ("icpy-javascript", "javascript"),
    "deno": ("bench-deno", "kernel:bench-deno"),  # bridge only with --sandbox off
    "deno, interrupt_mode message": ("bench-deno-msg", None),
}
SET_PROBE = "let probe = 42"
READ_PROBE = "console.log(typeof probe === 'undefined' ? 'LOST' : String(probe))"


def find_deno(option: str | None) -> str | None:
    deno = option or os.environ.get("DENO") or shutil.which("deno")
    return str(Path(deno).resolve()) if deno and os.access(deno, os.X_OK) else None


def write_spec(kernels: Path, name: str, spec: dict[str, Any]) -> None:
    (kernels / name).mkdir(parents=True)
    (kernels / name / "kernel.json").write_text(json.dumps(spec))


def private_specs(deno: str | None) -> tuple[Path, list[str]]:
    """Write kernel.json for the reference kernels that are installed; return (JUPYTER_PATH dir, skipped).

    The specs live in ``<dir>/kernels/``: the bare kernels get it as an extra kernel dir, the
    bridge's server gets ``<dir>`` first on its JUPYTER_PATH, and the directory is removed at the end.
    """
    root = Path(tempfile.mkdtemp(prefix="icpy-bench-kernels-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)  # also when the run fails
    root.chmod(0o755)  # a sandboxed kernel (leased uid) must reach DENO_DIR below
    kernels = root / "kernels"
    skipped = []
    if importlib.util.find_spec("bash_kernel") is not None:
        write_spec(kernels, "bench-bash_kernel", {
            "argv": [sys.executable, "-m", "bash_kernel", "-f", "{connection_file}"],
            "display_name": "Bash (bash_kernel)", "language": "bash"})
    else:
        skipped.append("bash_kernel (not installed: .venv/bin/pip install bash_kernel)")
    if deno:
        # What `deno jupyter --install` writes (no interrupt_mode: front ends send SIGINT),
        # plus a private cache and no update check (no traffic beyond 127.0.0.1).
        deno_dir = root / "deno-dir"
        deno_dir.mkdir(mode=0o777)
        deno_dir.chmod(0o777)
        spec = {"argv": [deno, "jupyter", "--kernel", "--conn", "{connection_file}"],
                "display_name": "Deno", "language": "typescript",
                "env": {"DENO_DIR": str(deno_dir), "DENO_NO_UPDATE_CHECK": "1"}}
        write_spec(kernels, "bench-deno", spec)
        write_spec(kernels, "bench-deno-msg", {**spec, "interrupt_mode": "message"})
    else:
        skipped.append("deno (none found: --deno PATH, $DENO or deno on PATH)")
    return root, skipped


async def timed(fn: Callable[[], Awaitable[object]], n: int, out: list[float]) -> None:
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t0)


async def interrupt_bare(spec: str, spec_dir: str) -> dict[str, Any]:
    """A fresh kernel: set probe, interrupt a busy loop after 1 s, read probe."""
    bare = await BareKernel(spec, extra_dirs=(spec_dir,)).start()
    try:
        assert (await bare.execute(SET_PROBE))["status"] == "ok"
        msg_id = bare.kc.execute("while (true) {}")
        early = None
        with contextlib.suppress(queue.Empty):  # no reply within 1 s: the loop is running
            early = await bare.kc.get_shell_msg(timeout=1)
        if early is not None:
            raise RuntimeError(f"{spec}: the loop ended before the interrupt: {early['content']}")
        t0 = time.perf_counter()
        await bare.km.interrupt_kernel()
        reply: dict[str, Any] | None = None
        with contextlib.suppress(Exception):  # no reply: the kernel died
            while reply is None:
                msg = await bare.kc.get_shell_msg(timeout=10)
                if msg["parent_header"].get("msg_id") == msg_id:
                    reply = msg["content"]
        row: dict[str, Any] = {
            "reply": f"{reply['status']} {reply.get('ename', '')}: {reply.get('evalue', '')}" if reply else "none (10 s)",
            "reply_s": time.perf_counter() - t0 if reply else float("nan"),
            "alive": await bare.km.is_alive(), "probe": "kernel dead", "restarted": False}
        if row["alive"]:
            out: list[str] = []
            await bare.execute(READ_PROBE, lambda _name, text: out.append(text), timeout=10)
            row["probe"] = "".join(out).strip()
        return row
    finally:
        await bare.stop()


async def interrupt_bridge(bridge: Bridge, language: str) -> dict[str, Any]:
    """The same through the bridge: ``interrupt`` message, then read probe in the same session."""
    session = f"int-{bridge.prefix}-{language.replace(':', '-')}"
    first = await bridge.execute(SET_PROBE, language=language, session_id=session)
    assert first["status"] == "completed", first
    bridge.n += 1
    execution_id = f"{bridge.prefix}-{bridge.n}"
    await bridge.conn.write_message(json.dumps({
        "type": "execute", "code": "while (true) {}", "execution_id": execution_id,
        "session_id": session, "language": language, "config": {"timeout": 60}}))
    await asyncio.sleep(1)
    t0 = time.perf_counter()
    await bridge.conn.write_message(json.dumps({"type": "interrupt", "execution_id": execution_id}))
    while True:
        event = json.loads(await asyncio.wait_for(bridge.conn.read_message(), 60))
        if event.get("type") == "execution_result" and event.get("execution_id") == execution_id:
            break
    reply_s = time.perf_counter() - t0
    error = event.get("error") or {}
    read = await bridge.execute(READ_PROBE, language=language, session_id=session, config={"timeout": 30})
    return {"reply": f"{event['status']} {error.get('ename', '')}: {error.get('evalue', '')}",
            "reply_s": reply_s, "alive": True, "restarted": event.get("kernel_restarted"),
            "probe": "\n".join(read["output"]) if read["status"] == "completed" else f"{read['status']}"}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    root, skipped = private_specs(find_deno(args.deno))
    spec_dir = str(root / "kernels")
    known = kernel_spec_manager().find_kernel_specs()
    wanted = set(args.kernels.split(",")) if args.kernels else set(KERNELS)
    present = {}
    for name, (spec, *_rest) in KERNELS.items():
        if name not in wanted:
            continue
        if spec in known or (Path(spec_dir) / spec).is_dir():
            present[name] = KERNELS[name]
        elif not spec.startswith("bench-"):
            skipped.append(f"{name} (no kernelspec {spec!r})")
    if "deno" in present and args.sandbox != "off":
        # The sandbox connects kernels over ZMQ ipc (they may have no network); Deno's kernel
        # speaks tcp only ("invalid host ... invalid char found in FQDN") and dies at start.
        skipped.append("deno through the bridge (tcp-only kernel; the sandbox uses ipc: --sandbox off)")
        present["deno"] = (*present["deno"][:1], None, *present["deno"][2:])
    out: dict[str, Any] = {"skipped": skipped, "server_sandbox": args.sandbox or "default"}
    # The server sees the private specs (``kernel:bench-deno``) for this run only.
    jupyter_path = os.pathsep.join(filter(None, [str(root), os.environ.get("JUPYTER_PATH")]))
    async with contextlib.AsyncExitStack() as stack:
        bares: dict[str, BareKernel] = {}
        for name, (spec, *_rest) in present.items():
            try:
                bares[name] = await BareKernel(spec, extra_dirs=(spec_dir,)).start()
                stack.push_async_callback(bares[name].stop)
            except Exception as exc:
                skipped.append(f"{name} (failed to start: {exc!r})")
        sandbox = ("--sandbox", args.sandbox) if args.sandbox else ()
        url = await stack.enter_async_context(server_process(
            "--max-output-size", str(RAISED_LIMIT), *sandbox, env={"JUPYTER_PATH": jupyter_path}))
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
                    result = await bridge.execute(code, language=language, session_id=session_of(language))
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
                if name in SLOW and not args.slow:
                    skipped.append(f"{name} throughput ({SLOW[name]}; --slow runs it)")
                    continue
                case = Case(f"{name}: {big}", big, expected[kind])
                run = await run_bare(bares[name], case)
                runs.append([name, "bare", run])
                print(f"  {name:<16} bare   {run['wall']:7.3f} s  {run['bytes']:>9} B  {run['check']}", flush=True)
                if language is not None:
                    run = await run_bridge(bridge, case, session_of(language), RAISED_LIMIT, language)
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

        if not args.skip_interrupt:
            probes = []
            for name, (spec, language) in INTERRUPT.items():
                if not (Path(spec_dir) / spec).is_dir() and spec not in known:
                    continue
                if name.split(",")[0] not in present:
                    continue
                probes.append([name, "bare", await interrupt_bare(spec, spec_dir)])
                if language is not None and (name == "icpy-javascript" or args.sandbox == "off"):
                    probes.append([name, "bridge", await interrupt_bridge(bridge, language)])
            print(f"\nInterrupt: `{SET_PROBE}`, interrupt `while (true) {{}}` after 1 s, read probe")
            print(table(["kernel", "client", "execute reply / result", "s after interrupt", "kernel alive",
                         "kernel_restarted", "probe read"],
                        [[n, w, r["reply"], r["reply_s"], r["alive"], r["restarted"], r["probe"]]
                         for n, w, r in probes]))
            out["interrupt"] = [{"kernel": n, "client": w, **r} for n, w, r in probes]
    for s in skipped:
        print(f"skipped: {s}")
    return out


def session_of(language: str) -> str:
    return "k-" + language.replace(":", "-")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-interrupt", action="store_true")
    parser.add_argument("--slow", action="store_true", help="also bash_kernel's and Deno's 2M lines (minutes)")
    parser.add_argument("--kernels", help=f"comma-separated subset of {','.join(KERNELS)}")
    parser.add_argument("--sandbox", help="the server's --sandbox (off: Deno through the bridge too)")
    parser.add_argument("--deno", help="the deno binary (default: $DENO, then deno on PATH)")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    data = asyncio.run(main(args))
    if not args.no_save:
        print(f"saved {save('kernels', data)}")
