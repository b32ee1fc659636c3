"""`icpy exec` from the shell: time to the first result and to exit, and where it goes.

End to end: ``python -m icpy_kernels exec 1`` (and ``-l javascript '1'``, ``-l bash 'echo 1'``)
as a subprocess; the first stdout line (the result) and the exit are timestamped. Median of
``--runs``. Beside it, the same command broken into phases, each measured in a fresh process
(so imports are cold, as for a user):

- interpreter: ``python -c pass``
- imports: what ``icpy exec`` imports before it starts a kernel, timed in-process, plus the
  biggest top-level modules of ``python -X importtime -m icpy_kernels exec ...``
- backend: building the embedded session manager (``LocalBackend()``)
- kernel start: spawn + ``wait_for_ready`` (``Session.ensure_started``)
- first execute: the execute -> result on the ready kernel
- shutdown: ``LocalBackend.close()`` (stopping the kernel; most of what comes after the result)

    .venv/bin/python bench/cli_startup.py [--runs 5] [--languages python,javascript,bash] [--trees A,B]

``--trees`` compares checkouts of the package (e.g. ``git archive REV | tar -x -C /tmp/before``),
runs interleaved, so that a shared machine's load falls on both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {  # language -> exec arguments
    "python": ["1"],
    "javascript": ["-l", "javascript", "1"],
    "bash": ["-l", "bash", "echo 1"],
}
PHASES = ("imports", "backend", "kernel start", "first execute", "shutdown")


def child_env(tree: Path = ROOT) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICPY_")}
    env["PYTHONPATH"] = str(tree)  # the checkout under test, whatever the caller's path says
    return env


def end_to_end(args: list[str], tree: Path = ROOT) -> tuple[float, float]:
    """Seconds to the first line on stdout and to the exit of ``icpy exec ARGS``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "icpy_kernels", "exec", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=child_env(tree), cwd=tree)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    first = time.perf_counter() - t0
    _, err = proc.communicate()
    total = time.perf_counter() - t0
    if proc.returncode != 0 or line.strip() != b"1":
        raise RuntimeError(f"icpy exec {args} exited {proc.returncode}: {line!r} {err.decode()[-500:]}")
    return first, total


def interpreter() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, env=child_env())
    return time.perf_counter() - t0


def import_profile(args: list[str], tree: Path = ROOT) -> list[tuple[str, float]]:
    """The top-level modules of ``-X importtime`` (cumulative seconds), biggest first."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "icpy_kernels", "exec", *args],
                          capture_output=True, text=True, env=child_env(tree), cwd=tree)
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        if not name[1:].startswith(" "):  # indent 0: imported by the command itself
            rows.append((name.strip(), int(cumulative) / 1e6))
    return sorted(rows, key=lambda r: -r[1])


async def phases(language: str) -> dict[str, float]:
    """One run of the exec path, phase by phase (called in a fresh process)."""
    t0 = time.perf_counter()
    from icpy_kernels import cli  # noqa: F401  (what `python -m icpy_kernels` imports first)
    from icpy_kernels.backends import LocalBackend
    from icpy_kernels.cli_exec import Printer  # noqa: F401
    t1 = time.perf_counter()
    backend = LocalBackend()
    t2 = time.perf_counter()
    session = backend.manager.get_or_create(None, language, LocalBackend.CONNECTION_ID)
    await session.ensure_started()
    t3 = time.perf_counter()
    code = CASES[language][-1]
    result = await backend.execute({"code": code, "language": language}, lambda event: None)
    t4 = time.perf_counter()
    await backend.close()
    t5 = time.perf_counter()
    assert result["status"] == "completed", result
    return dict(zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True))


def phases_in_child(language: str, tree: Path = ROOT) -> dict[str, float]:
    proc = subprocess.run([sys.executable, __file__, "--phases-of", language], capture_output=True,
                          text=True, env=child_env(tree), cwd=ROOT, check=True)
    return json.loads(proc.stdout.splitlines()[-1])


def main(args: argparse.Namespace) -> dict[str, object]:
    sys.path.insert(0, str(ROOT / "bench"))
    from benchlib import table

    trees = [Path(t).resolve() for t in args.trees.split(",")] if args.trees else [ROOT]
    base = statistics.median(interpreter() for _ in range(args.runs))
    print(f"interpreter (python -c pass): {base:.3f} s\n")
    report: dict[str, object] = {"interpreter": base, "trees": [str(t) for t in trees], "samples": {}}
    rows = []
    for language in args.languages.split(","):
        e2e: dict[Path, list[tuple[float, float]]] = {t: [] for t in trees}
        split: dict[Path, list[dict[str, float]]] = {t: [] for t in trees}
        for i in range(args.runs):
            order = trees if i % 2 == 0 else trees[::-1]
            for tree in order:
                e2e[tree].append(end_to_end(CASES[language], tree))
            for tree in order:
                split[tree].append(phases_in_child(language, tree))
        for tree in trees:
            med = {p: statistics.median(s[p] for s in split[tree]) for p in PHASES}
            first = statistics.median(f for f, _ in e2e[tree])
            total = statistics.median(t for _, t in e2e[tree])
            rows.append([language, tree.name, first, total, *(med[p] for p in PHASES)])
            top = import_profile(CASES[language], tree)[:5]
            print(f"{language} ({tree.name}): biggest top-level imports (-X importtime, cumulative s): "
                  + ", ".join(f"{name} {t:.3f}" for name, t in top), flush=True)
            report["samples"][f"{language} {tree}"] = {  # type: ignore[index]
                "first_result": [f for f, _ in e2e[tree]], "exit": [t for _, t in e2e[tree]],
                "phases": split[tree], "imports_top": top}
    print(f"\n`icpy exec` end to end and by phase, median of {args.runs} (s)")
    print(table(["language", "tree", "first result", "exit", *PHASES], rows))
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--languages", default="python,javascript,bash")
    parser.add_argument("--trees", help="comma-separated checkouts to compare (default: this one)")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--phases-of", help=argparse.SUPPRESS)  # the child of phases_in_child
    args = parser.parse_args()
    if args.phases_of:
        print(json.dumps(asyncio.run(phases(args.phases_of))))
        sys.exit(0)
    data = main(args)
    if not args.no_save:
        from benchlib import save

        print(f"saved {save('cli_startup', data)}")
