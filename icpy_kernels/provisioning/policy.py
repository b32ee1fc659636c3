"""Pure pieces of a sandboxed launch: rlimits, environment, command lines (no I/O but stat);
what the kernel sees of the host is view.py."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from .. import kernelenv
from .memory import address_space
from .probe import bwrap_args

LAUNCHER = str(Path(__file__).with_name("launch.py"))

AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10


def socket_families(tier: str, network: bool) -> list[int]:
    """Address families the seccomp filter lets ``socket()`` create, besides netlink's
    read-only NETLINK_ROUTE (which lists interfaces); every other one (packet, vsock, alg,
    other netlink protocols, ...: kernel attack surface no kernel needs) fails with EACCES.

    Isolated on tier A, IP stays: it reaches only the sandbox's own empty namespace (a server
    the user starts on its loopback still works). Isolated on B and C: unix sockets only, the
    one thing that stops UDP there (Landlock covers TCP alone)."""
    if network or tier == "bwrap":
        return [AF_UNIX, AF_INET, AF_INET6]
    return [AF_UNIX]


def family_names(families: list[int]) -> list[str]:
    """What ``socket()`` may create under the filter, for reports (NETLINK_ROUTE always)."""
    names = {AF_UNIX: "unix", AF_INET: "inet", AF_INET6: "inet6"}
    return [names.get(f, str(f)) for f in families] + ["netlink_route"]


def sandbox_env(source: dict[str, str], *, workspace: str, extra_allow: tuple[str, ...] = (),
                tmpdir: str = "/tmp", language: str = "", memory: int = 0,
                rlimit_as: bool = False) -> dict[str, str]:
    env = {k: v for k, v in kernelenv.select(source, kernelenv.SANDBOX + tuple(extra_allow)).items()
           if not k.startswith("ICPY_")}
    env.setdefault("PATH", os.defpath)
    env.setdefault("LANG", "C.UTF-8")
    env.update(HOME=workspace, PWD=workspace, TMPDIR=tmpdir, USER="sandbox", LOGNAME="sandbox")
    if rlimit_as:
        # glibc reserves 64 MiB of address space per malloc arena and thread: without this
        # cap ipykernel cannot even start under RLIMIT_AS.
        env["MALLOC_ARENA_MAX"] = "2"
    if language.lower() in ("javascript", "typescript") and memory > 0:
        heap = max(64, memory * 3 // 4 >> 20)
        env["NODE_OPTIONS"] = f"--max-old-space-size={heap}"
    return env


def rlimits(*, memory: int, processes: int, file_size: int, open_files: int,
            rlimit_as: bool, count_processes: bool, shared_tasks: int = 0,
            language: str = "", disk_quota: int = 0) -> dict[str, int]:
    """``count_processes``: the kernel's uid is its own (dedicated uid or user namespace).
    Otherwise RLIMIT_NPROC counts every task of the server's uid, so the cap is set
    ``processes`` above the ``shared_tasks`` that uid runs now: a fork bomb still stops.
    ``language`` sizes RLIMIT_AS (Node's is larger: see ``memory.NODE_CODE_RANGE``).
    RLIMIT_FSIZE is at most ``disk_quota``: one file alone never outgrows the quota,
    whatever the quota watcher sees."""
    limits = {"RLIMIT_CORE": 0}
    if rlimit_as and memory > 0:
        limits["RLIMIT_AS"] = address_space(memory, language)
    if processes > 0 and (count_processes or shared_tasks > 0):
        limits["RLIMIT_NPROC"] = processes + (0 if count_processes else shared_tasks)
    sizes = [n for n in (file_size, disk_quota) if n > 0]
    if sizes:
        limits["RLIMIT_FSIZE"] = min(sizes)
    if open_files > 0:
        limits["RLIMIT_NOFILE"] = open_files
    return limits


def runtime_paths(kernel_cmd: list[str], path_env: str) -> list[str]:
    """Directories the kernel must be able to read: interpreters and the package itself."""
    import shutil

    import icpy_kernels

    found = {sys.prefix, sys.base_prefix, sys.exec_prefix,
             str(Path(os.path.realpath(sys.executable)).parent.parent),
             # The package itself, not its parent: an editable install's parent is a whole
             # checkout (tests, a history database someone left there...).
             str(Path(icpy_kernels.__file__).resolve().parent)}
    for name in {kernel_cmd[0], "node", "bash"}:
        exe = shutil.which(name, path=path_env)
        if exe:
            found.add(str(Path(exe).parent.parent))
            found.add(str(Path(os.path.realpath(exe)).parent.parent))
    return sorted(p for p in found if p and p != "/")


def hidden_ancestor(path: str) -> str | None:
    """The highest ancestor another uid cannot traverse (no o+x), if any, below ``/``."""
    parts = Path(path).parts
    for i in range(2, len(parts)):
        ancestor = str(Path(*parts[:i]))
        try:
            if not os.stat(ancestor).st_mode & 0o001:
                return ancestor
        except OSError:
            return None
    return None


def bwrap_command(bwrap: str, *, root: bool, kernel_cmd: list[str], outer: dict[str, Any],
                  inner: dict[str, Any], mount_args: list[str]) -> list[str]:
    return [
        sys.executable, "-I", "-S", LAUNCHER, "outer", json.dumps(outer), "--",
        bwrap, *bwrap_args(root=root), *mount_args, "--",
        sys.executable, "-I", "-S", LAUNCHER, "inner", json.dumps(inner), "--", *kernel_cmd,
    ]


def direct_command(*, kernel_cmd: list[str], spec: dict[str, Any], supervise: bool = False) -> list[str]:
    stages = "outer,supervise,inner" if supervise else "outer,inner"
    return [sys.executable, "-I", "-S", LAUNCHER, stages, json.dumps(spec), "--", *kernel_cmd]
