"""``icpy exec`` imports only what running code locally needs (its start-up time is mostly imports
and the kernel's own start: bench/cli_startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys

from jupyter_client.kernelspec import KernelSpecManager

from icpy_kernels.runtime.kernelspecs import bundled_kernelspecs_dir, kernel_spec_manager

# Each of these cost `icpy exec` 5-90 ms at start-up and is only used by other commands.
NOT_FOR_EXEC = ("tornado.web", "tornado.websocket", "icpy_kernels.server.app", "icpy_kernels.history.store",
                "sqlite3", "IPython", "nbformat")

SCRIPT = f"""
import asyncio, json, sys
from icpy_kernels import cli, cli_exec
from icpy_kernels.backends import LocalBackend
backend = LocalBackend()
asyncio.run(backend.close())
print(json.dumps([m for m in {NOT_FOR_EXEC!r} if m in sys.modules]))
"""


def test_exec_builds_its_local_backend_without_server_history_or_ipython_modules():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_kernel_dirs_are_jupyters_own_plus_the_bundled_ones():
    # Computed without IPython, but the same list a front end's KernelSpecManager uses.
    assert kernel_spec_manager().kernel_dirs == [*KernelSpecManager().kernel_dirs, str(bundled_kernelspecs_dir())]
