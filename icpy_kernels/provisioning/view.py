"""What a sandboxed kernel sees of the host: an allow-list of read-only paths, never ``/``.

Binding the host's whole root read-only showed every session the others' connection files
(their HMAC keys), the history database, the server's log, other checkouts, ``/home`` and
``/sys/fs/cgroup``. The view is built up instead from what a kernel needs to run: the system
directories, the interpreters' and the package's prefixes, a few ``/etc`` files, the
workspace and the kernel's own private files; ``--sandbox-ro-path`` adds more. Pure but for
``stat``/``readlink``: tier A turns it into bwrap arguments, tier B into Landlock read rules.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

# Directories of the system's programs and libraries (symlinks into /usr on merged-/usr
# systems, mirrored as such).
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# /etc files a program may read that say nothing about the host's users or services.
ETC = (
    "/etc/alternatives", "/etc/bash.bashrc", "/etc/ca-certificates", "/etc/debian_version",
    "/etc/fonts", "/etc/gai.conf", "/etc/host.conf", "/etc/hosts", "/etc/inputrc",
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/locale.alias",
    "/etc/localtime", "/etc/mime.types", "/etc/nsswitch.conf", "/etc/os-release",
    "/etc/profile", "/etc/protocols", "/etc/services", "/etc/ssl", "/etc/terminfo",
    "/etc/timezone",
)
NETWORK_ETC = ("/etc/resolv.conf",)
# Programs size thread pools from the CPU list (glibc's get_nprocs, OpenBLAS, Node); the
# rest of /sys (cgroups of other sessions and servers among it) stays out.
SYS = ("/sys/devices/system/cpu",)
TMPFS = ("/tmp", "/run", "/var/tmp")


def under(path: str, roots: Iterable[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _exists(path: str) -> bool:
    return os.path.lexists(path)


@dataclass
class View:
    """The host paths one kernel sees, all read-only unless listed in ``writable``."""

    read: list[str]                      # host directories and files, bound at the same path
    writable: list[str]                  # bound read-write (workspace, the ipc directory)
    files: dict[str, str] = field(default_factory=dict)  # destination -> server-written source
    hidden: list[str] = field(default_factory=list)      # covered by an empty tmpfs

    def roots(self) -> list[str]:
        """Every directory a kernel can read from, for PATH and Landlock."""
        return [*self.read, *self.writable]


def build(*, runtime: Iterable[str], extra: Iterable[str] = (), private_read: Iterable[str] = (),
          writable: Iterable[str] = (), network: bool = False, files: dict[str, str] | None = None,
          hide: Iterable[str] = ()) -> View:
    """The view for one kernel start: ``runtime`` are the interpreters' and the package's
    directories, ``extra`` the server's ``--sandbox-ro-path``, ``private_read`` the kernel's
    own connection file, ``files`` server-written replacements (``/etc/passwd``...)."""
    wanted = [*SYSTEM, *ETC, *(NETWORK_ETC if network else ()), *SYS, *runtime, *extra,
              *private_read]
    read: list[str] = []
    for path in wanted:
        path = os.path.normpath(path)
        if path != "/" and path not in read and _exists(path) and path not in (files or {}):
            read.append(path)
    rw = [os.path.normpath(p) for p in writable]
    bound = [*read, *rw]
    # A secret (the history database's directory) inside something bound is covered, unless
    # covering it would also hide something the kernel needs.
    hidden = [h for h in map(os.path.normpath, hide)
              if under(h, bound) and h not in bound and not any(under(b, [h]) for b in bound)]
    return View(read=read, writable=rw, files=dict(files or {}), hidden=hidden)


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def bwrap_args(view: View, *, workspace: str, tmp_size: int, network: bool) -> list[str]:
    """bwrap's filesystem arguments: an empty root holding only the view.

    Missing parents are made 0755 (bwrap would make them 0700 root: a dedicated uid could
    not pass). A top-level symlink (/lib -> usr/lib) is recreated as a symlink.
    """
    args = ["--dev", "/dev", "--proc", "/proc"]
    made: set[str] = {"/", "/dev", "/proc"}

    def parents(path: str) -> None:
        for parent in _parents(path):
            if parent not in made:
                made.add(parent)
                args.extend(["--perms", "0755", "--dir", parent])

    for tmp in TMPFS:
        parents(tmp)
        if tmp_size > 0:
            args += ["--size", str(tmp_size)]
        args += ["--perms", "1777", "--tmpfs", tmp] if tmp != "/run" else ["--tmpfs", tmp]
        made.add(tmp)
    for path in sorted(view.read, key=lambda p: p.count("/")):
        parents(path)
        if os.path.islink(path) and path.count("/") == 1:
            args += ["--symlink", os.readlink(path), path]
        else:
            args += ["--ro-bind", path, path]
        made.add(path)
    for dest, source in sorted(view.files.items()):
        parents(dest)
        args += ["--ro-bind", source, dest]
    for path in view.writable:
        parents(path)
        args += ["--bind", path, path]
        made.add(path)
    for path in view.hidden:
        args += ["--tmpfs", path]
    # The root itself is a tmpfs bwrap made: in a user namespace (non-root server) the
    # kernel would own it and could fill memory through it. The binds above keep their modes.
    args += ["--remount-ro", "/", "--chdir", workspace]
    if not network:
        args.insert(0, "--unshare-net")
    return args


def passwd_files(uid: int, gid: int, home: str) -> dict[str, str]:
    """/etc/passwd and /etc/group naming only root, the kernel's uid and nobody: the host's
    accounts are none of a kernel's business, but ``whoami``, ``~`` and pip need an entry."""
    return {
        "passwd": (f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
                   f"sandbox:x:{uid}:{gid}:sandbox:{home}:/bin/bash\n"
                   "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
        "group": f"root:x:0:\nsandbox:x:{gid}:\nnogroup:x:65534:\n",
    }


def path_env(path: str, roots: Iterable[str]) -> str:
    """The kernel's PATH: the server's entries that lie inside the view, in order (no
    ``/root/.cargo/bin`` or pyenv shims leaking the server's setup into kernels)."""
    roots = list(roots)
    kept: list[str] = []
    for entry in path.split(os.pathsep):
        if entry and os.path.isabs(entry) and entry not in kept and under(os.path.normpath(entry), roots):
            kept.append(entry)
    return os.pathsep.join(kept) or "/usr/local/bin:/usr/bin:/bin"
