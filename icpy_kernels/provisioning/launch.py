"""The sandbox launcher: ``python -I -S launch.py STAGES SPEC -- CMD...`` (stdlib only, no imports
from the package, so it runs before and inside the sandbox with nothing but the interpreter).

Stages, comma-separated, run in this order, then ``exec`` CMD:
  outer  join the kernel's cgroups (must happen before anything forks, hence here and not
         in the server after ``Popen`` returns)
  supervise  fork: the child goes on to the next stages and the kernel; this process stays as
         its parent and subreaper, so a setsid/double-forked daemon stays its child; when the
         kernel exits, or on SIGTERM, it kills every descendant and exits (tiers B and C when
         neither a dedicated uid nor a pid namespace can do that)
  inner  set rlimits, drop to the sandbox uid, set no_new_privs, apply Landlock, chdir
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
import time

PR_SET_NO_NEW_PRIVS = 38
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
SYS_LANDLOCK = {"create": 444, "add_rule": 445, "restrict_self": 446}  # same on x86_64/aarch64
LANDLOCK_RULE_PATH_BENEATH = 1
# ABI 1 filesystem rights; later ABIs add REFER (1<<13) and TRUNCATE (1<<14).
FS_READ = (1 << 0) | (1 << 2) | (1 << 3)  # execute, read_file, read_dir
FS_ALL_V1 = (1 << 13) - 1
NET_CONNECT_TCP = 1 << 1
NET_BIND_TCP = 1 << 0
# ABI 6: no signals to, no abstract unix sockets of, processes outside the domain (the server).
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1


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
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]

    scoped = (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0
    attr = RulesetAttr(fs_all, net, scoped)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
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


def _children() -> list[int]:
    pid = os.getpid()
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return found


def _reap_all(deadline: float) -> None:
    """SIGKILL every child until none is left: as subreaper, orphaned grandchildren come to us."""
    while time.monotonic() < deadline:
        children = _children()
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            if not _children():
                return
        if not children:
            return
        time.sleep(0.01)


class _Stop(Exception):
    pass


def supervise(spec: dict) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        _fail("prctl(PR_SET_CHILD_SUBREAPER) failed")
    parent = os.getpid()
    kernel = os.fork()
    if kernel == 0:
        # Dies with us even if we are SIGKILLed; then its daemons escape, so the server
        # asks us with SIGTERM first.
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)
        return
    def stop(*_: object) -> None:
        raise _Stop  # a handler that returns would have waitpid retried (PEP 475)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts are for the kernel (same group)
    status = 1
    try:
        while True:
            pid, st = os.waitpid(-1, 0)
            if pid == kernel:
                status = os.waitstatus_to_exitcode(st)
                break
    except (_Stop, ChildProcessError):
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _reap_all(time.monotonic() + 5)
    os._exit(status if status >= 0 else 128 - status)


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
        {"outer": outer, "supervise": supervise, "inner": inner}[stage](spec)
    try:
        os.execvp(cmd[0], cmd)
    except OSError as exc:
        _fail(f"cannot run {cmd[0]!r}: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])
