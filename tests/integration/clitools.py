"""Driving ``icpy`` as a user would: subprocesses, a server subprocess, kernel process checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ICPY = [sys.executable, "-m", "icpy_kernels"]
TOKEN = "cli-test-token-0123456789"
REPO = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment (the suite's Jupyter paths) minus any ICPY_* of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICPY_")}
    env.update(extra)
    return env


def icpy(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ICPY, *args], input=stdin, capture_output=True, text=True,
                          env=env or clean_env(), timeout=timeout, cwd=REPO)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return ") Z " not in stat  # a zombie has exited; only its parent has not reaped it


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (kernels, and e.g. the node a JS kernel runs)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return {p for p in found if alive(p)}


def wait_gone(pids: set[int], timeout: float = 15) -> set[int]:
    """The pids still alive after ``timeout`` seconds (empty when all have exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {p for p in pids if alive(p)}
        if not left:
            return set()
        time.sleep(0.1)
    return {p for p in pids if alive(p)}


class ServerProcess:
    """``icpy serve --port 0`` in a subprocess; ``url`` is read from what it prints."""

    def __init__(self, *extra: str, env: dict[str, str] | None = None) -> None:
        """``--token TOKEN``, unless ``env`` is given: then the token is whatever it says."""
        token = ["--token", TOKEN] if env is None else []
        self.proc = subprocess.Popen(
            [*ICPY, "serve", "--port", "0", *token, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or clean_env(), cwd=REPO)
        assert self.proc.stdout is not None
        self.banner = line = self.proc.stdout.readline()
        if "serving on" not in line:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read()!r}")
        # "icpy_kernels serving on ws://127.0.0.1:PORT/ws?token=..." (a generated token) or
        # "icpy_kernels serving on ws://127.0.0.1:PORT/ws (token from --token/ICPY_TOKEN)"
        self.url = line.split("serving on ", 1)[1].split()[0].split("?", 1)[0]
        self.port = int(self.url.rsplit(":", 1)[1].split("/", 1)[0])

    def kernel_pids(self) -> set[int]:
        return descendants(self.proc.pid)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, set[int]]:
        """Signal the server; return its exit status and the kernel processes still alive."""
        kernels = self.kernel_pids()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        left = wait_gone(kernels, timeout=5)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        return code, left

    def remote(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        """``icpy`` with ``--url``/``--token`` pointing here (passed through the environment)."""
        return icpy(*args, env=clean_env(ICPY_URL=self.url, ICPY_TOKEN=TOKEN), **kw)
