"""The sandbox launcher: ``python -I -S launch.py STAGES SPEC -- CMD...`` (stdlib only, no imports
from the package, so it runs before and inside the sandbox with nothing but the interpreter).

Stages, comma-separated, run in this order, then ``exec`` CMD:
  outer  join the kernel's cgroups (must happen before anything forks, hence here and not
         in the server after ``Popen`` returns)
  inner  set rlimits, drop to the sandbox uid, set no_new_privs, apply Landlock, chdir
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys

PR_SET_NO_NEW_PRIVS = 38
SYS_LANDLOCK = {"create": 444, "add_rule": 445, "restrict_self": 446}  # same on x86_64/aarch64
LANDLOCK_RULE_PATH_BENEATH = 1
# ABI 1 filesystem rights; later ABIs add REFER (1<<13) and TRUNCATE (1<<14).
FS_READ = (1 << 0) | (1 << 2) | (1 << 3)  # execute, read_file, read_dir
FS_ALL_V1 = (1 << 13) - 1
NET_CONNECT_TCP = 1 << 1
NET_BIND_TCP = 1 << 0


def _fail(message: str) -> None:
    sys.stderr.write(f"icpy sandbox: {message}\n")
    sys.stderr.flush()
    os._exit(126)


def outer(spec: dict) -> None:
    for procs in spec.get("cgroup_procs", []):
        try:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        except OSError as exc:
            _fail(f"cannot join cgroup {procs}: {exc}")


def _landlock(spec: dict) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    abi = int(spec["landlock"]["abi"])
    fs_all = FS_ALL_V1 | ((1 << 13) if abi >= 2 else 0) | ((1 << 14) if abi >= 3 else 0)
    net = (NET_BIND_TCP | NET_CONNECT_TCP) if abi >= 4 and not spec["landlock"]["network"] else 0

    class RulesetAttr(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]

    attr = RulesetAttr(fs_all, net)
    size = ctypes.sizeof(RulesetAttr) if abi >= 4 else 8
    ruleset = libc.syscall(SYS_LANDLOCK["create"], ctypes.byref(attr), ctypes.c_size_t(size), 0)
    if ruleset < 0:
        _fail(f"landlock_create_ruleset failed: errno {ctypes.get_errno()}")
    for path, rights in [("/", FS_READ)] + [(p, fs_all) for p in spec["landlock"]["writable"]]:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        if not os.path.isdir(path):  # a file takes only file rights (exec, write, read, truncate)
            rights &= (1 << 0) | (1 << 1) | (1 << 2) | (1 << 14)
        rule = PathBeneath(rights, fd)
        if libc.syscall(SYS_LANDLOCK["add_rule"], ruleset, LANDLOCK_RULE_PATH_BENEATH,
                        ctypes.byref(rule), 0) < 0:
            _fail(f"landlock_add_rule {path} failed: errno {ctypes.get_errno()}")
        os.close(fd)
    if libc.syscall(SYS_LANDLOCK["restrict_self"], ruleset, 0) < 0:
        _fail(f"landlock_restrict_self failed: errno {ctypes.get_errno()}")
    os.close(ruleset)


def inner(spec: dict) -> None:
    for name, value in spec.get("rlimits", {}).items():
        resource.setrlimit(getattr(resource, name), (value, value))
    os.environ.update(spec.get("env", {}))
    uid = spec.get("uid")
    if uid is not None and os.getuid() != uid:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if os.getuid() == 0 or os.geteuid() == 0:
            _fail("still uid 0 after setresuid")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        _fail("prctl(PR_SET_NO_NEW_PRIVS) failed")
    if spec.get("landlock"):
        _landlock(spec)
    if spec.get("cwd"):
        os.chdir(spec["cwd"])


def main(argv: list[str]) -> None:
    stages, raw, sep, *cmd = argv
    if sep != "--" or not cmd:
        _fail("usage: launch.py STAGES SPEC -- CMD...")
    spec = json.loads(raw)
    for stage in stages.split(","):
        {"outer": outer, "inner": inner}[stage](spec)
    try:
        os.execvp(cmd[0], cmd)
    except OSError as exc:
        _fail(f"cannot run {cmd[0]!r}: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])
