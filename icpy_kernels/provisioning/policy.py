"""Pure pieces of a sandboxed launch: rlimits, environment, mounts, command lines (no I/O but stat)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from .memory import address_space
from .probe import bwrap_args

LAUNCHER = str(Path(__file__).with_name("launch.py"))
TMPFS = ("/tmp", "/run", "/var/tmp")
GiB = 1 << 30

# The kernel's environment is built from scratch, never inherited: names ending in '*' are
# prefixes. The server's token and settings (ICPY_*) can never match.
ENV_ALLOW = (
    "PATH", "LANG", "LANGUAGE", "LC_*", "TZ", "TERM", "JUPYTER_PATH", "JUPYTER_DATA_DIR",
    "VIRTUAL_ENV", "PYTHONPATH", "NODE_PATH", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
    "MALLOC_ARENA_MAX", "JPY_SESSION_NAME",
)


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


def allowed(name: str, patterns: tuple[str, ...]) -> bool:
    return any(name == p or (p.endswith("*") and name.startswith(p[:-1])) for p in patterns)


def sandbox_env(source: dict[str, str], *, workspace: str, extra_allow: tuple[str, ...] = (),
                tmpdir: str = "/tmp", language: str = "", memory: int = 0,
                rlimit_as: bool = False) -> dict[str, str]:
    patterns = ENV_ALLOW + tuple(extra_allow)
    env = {k: v for k, v in source.items() if allowed(k, patterns) and not k.startswith("ICPY_")}
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
            language: str = "") -> dict[str, int]:
    """``count_processes``: the kernel's uid is its own (dedicated uid or user namespace).
    Otherwise RLIMIT_NPROC counts every task of the server's uid, so the cap is set
    ``processes`` above the ``shared_tasks`` that uid runs now: a fork bomb still stops.
    ``language`` sizes RLIMIT_AS (Node's is larger: see ``memory.NODE_CODE_RANGE``)."""
    limits = {"RLIMIT_CORE": 0}
    if rlimit_as and memory > 0:
        limits["RLIMIT_AS"] = address_space(memory, language)
    if processes > 0 and (count_processes or shared_tasks > 0):
        limits["RLIMIT_NPROC"] = processes + (0 if count_processes else shared_tasks)
    if file_size > 0:
        limits["RLIMIT_FSIZE"] = file_size
    if open_files > 0:
        limits["RLIMIT_NOFILE"] = open_files
    return limits


def runtime_paths(kernel_cmd: list[str], path_env: str) -> list[str]:
    """Directories the kernel must be able to read: interpreters and the package itself."""
    import shutil

    import icpy_kernels

    found = {sys.prefix, sys.base_prefix, sys.exec_prefix,
             str(Path(os.path.realpath(sys.executable)).parent.parent),
             str(Path(icpy_kernels.__file__).resolve().parent.parent)}
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


def under(path: str, roots: tuple[str, ...] | list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _parents_below(path: str, mount_points: list[str]) -> list[str]:
    """Ancestors of ``path`` strictly between the deepest fresh mount holding it and itself."""
    holders = [m for m in mount_points if under(path, [m]) and m != path]
    if not holders:
        return []
    top = max(holders, key=len)
    parts = Path(path).relative_to(top).parts
    return [str(Path(top, *parts[:i])) for i in range(1, len(parts))]


def mounts(*, workspace: str, private_dir: str, needed: list[str], other_uid: bool,
           network: bool, tmp_size: int) -> list[str]:
    """bwrap's filesystem arguments: read-only host, private tmpfs, rw workspace.

    A needed path hidden by our tmpfs, or (for a dedicated uid) behind a directory that uid
    cannot traverse such as ``/root``, gets that directory replaced by an empty tmpfs and
    the path bound back in read-only: the rest of that directory stays invisible.
    """
    args = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for tmp in TMPFS:
        if tmp_size > 0:
            args += ["--size", str(tmp_size)]
        args += ["--perms", "1777", "--tmpfs", tmp] if tmp != "/run" else ["--tmpfs", tmp]
    covers: list[str] = []
    binds: list[str] = []
    for path in needed:
        if under(path, TMPFS):
            binds.append(path)
        elif other_uid and (ancestor := hidden_ancestor(path)):
            if ancestor not in covers:
                covers.append(ancestor)
            binds.append(path)
    for cover in covers:
        args += ["--tmpfs", cover]
    fresh = [*TMPFS, *covers]
    made: set[str] = set()
    for path, how in [*((p, "--ro-bind") for p in binds),
                      (private_dir, "--bind"), (workspace, "--bind")]:
        # bwrap would create the missing parents 0700 root: the kernel's uid could not pass.
        for parent in _parents_below(path, fresh):
            if parent not in made:
                made.add(parent)
                args += ["--perms", "0755", "--dir", parent]
        args += [how, path, path]
    args += ["--chdir", workspace]
    if not network:
        args.insert(0, "--unshare-net")
    return args


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
