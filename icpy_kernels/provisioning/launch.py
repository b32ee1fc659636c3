"""The sandbox launcher: ``python -I -S launch.py STAGES SPEC -- CMD...`` (stdlib only, no imports
from the package, so it runs before and inside the sandbox with nothing but the interpreter).

Stages, comma-separated, run in this order, then ``exec`` CMD:
  outer  join the kernel's cgroups (must happen before anything forks, hence here and not
         in the server after ``Popen`` returns)
  supervise  fork: the child goes on to the next stages and the kernel; this process stays as
         its parent and subreaper, so a setsid/double-forked daemon stays its child; when the
         kernel exits, or on SIGTERM, it kills every descendant and exits (tiers B and C when
         neither a dedicated uid nor a pid namespace can do that)
  inner  set rlimits, drop to the sandbox uid, set no_new_privs, apply Landlock and the
         seccomp filter, chdir
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

# seccomp: a classic BPF filter assembled here (no libseccomp needed). Numbers per audit arch.
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000  # x86_64's x32 ABI: other numbers, same arch value: all denied
_DENIED_NAMES = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "mount", "umount2", "pivot_root",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "swapon", "swapoff", "reboot", "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key",
    "request_key", "unshare", "setns", "open_by_handle_at", "acct", "quotactl",
    "lookup_dcookie", "syslog", "iopl", "ioperm",
    # io_uring can open sockets (IORING_OP_SOCKET) where no filter sees them.
    "io_uring_setup", "io_uring_enter", "io_uring_register",
)
SYSCALLS = {
    "x86_64": dict(zip(_DENIED_NAMES, (
        101, 310, 311, 246, 320, 175, 313, 176, 165, 166, 155, 428, 429, 430, 431, 432, 433, 442,
        167, 168, 169, 321, 298, 323, 250, 248, 249, 272, 308, 304, 163, 179, 212, 103, 172, 173,
        425, 426, 427), strict=True), socket=41, socketpair=53, clone=56, clone3=435),
    "aarch64": dict(zip(_DENIED_NAMES, (
        117, 270, 271, 104, 294, 105, 273, 106, 40, 39, 41, 428, 429, 430, 431, 432, 433, 442,
        224, 225, 142, 280, 241, 282, 219, 217, 218, 97, 268, 265, 89, 60, 18, 116, None, None,
        425, 426, 427), strict=True), socket=198, socketpair=199, clone=220, clone3=435),
}
AF_UNIX, AF_NETLINK, NETLINK_ROUTE = 1, 16, 0
# clone(): CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET (clone3 hides its flags
# in memory a filter cannot read: it gets ENOSYS and glibc falls back to clone).
CLONE_NEW_MASK = 0x7E020000
EPERM, EACCES, ENOSYS = 1, 13, 38
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000


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
    # Read (and execute) only the view's paths, not "/": other sessions' connection files,
    # the history database and the user's home stay out even under the server's own uid.
    rules = [(p, FS_READ) for p in spec["landlock"].get("read", ["/"])]
    for path, rights in rules + [(p, fs_all) for p in spec["landlock"]["writable"]]:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # an optional path this host lacks
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


def seccomp_program(arch: str, families: list[int]) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions: ``socket()`` only for ``families`` and
    NETLINK_ROUTE (EACCES otherwise), ``socketpair()`` only AF_UNIX, no namespaces from
    ``clone``, ENOSYS for ``clone3``, EPERM for ``_DENIED_NAMES`` and any other ABI; the rest
    allowed. NETLINK_ROUTE only reads interfaces and addresses without CAP_NET_ADMIN, and
    getifaddrs() needs it: libzmq aborts the kernel when it fails (ipykernel binds a tcp pipe)."""
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    table = SYSCALLS[arch]
    # Each entry: (code, k, true label, false label); labels name instructions below.
    prog: list[tuple[int, int, str | None, str | None]] = [
        (ld, 4, None, None), (jeq, AUDIT_ARCH[arch], None, "eperm"), (ld, 0, None, None)]
    if arch == "x86_64":
        prog.append((jge, X32_SYSCALL_BIT, "eperm", None))
    prog += [(jeq, nr, "eperm", None) for name, nr in table.items()
             if name in _DENIED_NAMES and nr is not None]
    prog += [(jeq, table["socket"], "socket", None), (jeq, table["socketpair"], "socketpair", None),
             (jeq, table["clone"], "clone", None), (jeq, table["clone3"], "enosys", None),
             (ret, RET_ALLOW, None, None)]
    labels = {"socket": len(prog)}
    prog.append((ld, 16, None, None))  # low word of args[0], the family (little endian)
    prog += [(jeq, family, "allow", None) for family in families if family != AF_NETLINK]
    prog += [(jeq, AF_NETLINK, None, "eacces"), (ld, 32, None, None),  # args[2], the protocol
             (jeq, NETLINK_ROUTE, "allow", "eacces")]
    labels["socketpair"] = len(prog)
    prog += [(ld, 16, None, None), (jeq, AF_UNIX, "allow", "eacces")]
    labels["clone"] = len(prog)
    prog += [(ld, 16, None, None), (jset, CLONE_NEW_MASK, "eperm", "allow")]
    for label, value in (("allow", RET_ALLOW), ("eperm", RET_ERRNO | EPERM),
                         ("eacces", RET_ERRNO | EACCES), ("enosys", RET_ERRNO | ENOSYS)):
        labels[label] = len(prog)
        prog.append((ret, value, None, None))
    out = []
    for i, (code, k, jt, jf) in enumerate(prog):
        offsets = [labels[x] - i - 1 if x else 0 for x in (jt, jf)]
        if not all(0 <= o <= 255 for o in offsets):
            raise ValueError(f"seccomp jump out of range at {i}")
        out.append((code, offsets[0], offsets[1], k))
    return out


def _seccomp(spec: dict) -> None:
    import platform

    arch = platform.machine()
    if arch not in AUDIT_ARCH:
        _fail(f"seccomp: unsupported architecture {arch}")
    prog = seccomp_program(arch, [int(f) for f in spec["families"]])

    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    filters = (SockFilter * len(prog))(*(SockFilter(*ins) for ins in prog))
    fprog = SockFprog(len(prog), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        _fail(f"prctl(PR_SET_SECCOMP) failed: errno {ctypes.get_errno()}")


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
    if spec.get("seccomp"):
        _seccomp(spec["seccomp"])  # last: the stages above need none of what it denies
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
