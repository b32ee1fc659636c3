"""A kernel's private runtime directory: what the server writes for it, and where it binds.

The kernel once owned this directory, and a root server chowned the connection file in it
on every restart: a kernel that swapped that file for a symlink to ``/etc/shadow`` got the
host file chowned to its uid. Now the directory and every file in it belong to the server
and the kernel can change none of them:

    sbx-XXXX/             server's, 0711 (a dedicated uid may pass, not list)
      passwd, group       server's, 0444: the sandbox's /etc/passwd and /etc/group
      connection-N.json   server's; group = the kernel's uid, 0440: start N's HMAC key
      ipc-N/              the kernel's, 0700: start N's ZeroMQ sockets (the one place it writes)

Each (re)start gets a fresh connection file and ipc directory, written from scratch; the
previous start's go. Ownership and modes are set through descriptors, never by path.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from . import safefs
from .view import passwd_files


class PrivateDir:
    def __init__(self, runtime_dir: str | Path, name: str, *, uid: int | None, home: str) -> None:
        Path(runtime_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=runtime_dir))
        self.uid = uid
        self.starts = 0
        kernel_uid = os.getuid() if uid is None else uid
        kernel_gid = os.getgid() if uid is None else uid
        fd = safefs.open_dir(self.path)
        try:
            os.fchmod(fd, 0o700 if uid is None else 0o711)
            for name_, text in passwd_files(kernel_uid, kernel_gid, home).items():
                file_fd = os.open(name_, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                  | os.O_CLOEXEC, 0o444, dir_fd=fd)
                with os.fdopen(file_fd, "w") as f:
                    f.write(text)
        finally:
            os.close(fd)

    @property
    def connection_file(self) -> Path:
        return self.path / f"connection-{self.starts}.json"

    @property
    def ipc_dir(self) -> Path:
        return self.path / f"ipc-{self.starts}"

    @property
    def etc_files(self) -> dict[str, str]:
        return {"/etc/passwd": str(self.path / "passwd"), "/etc/group": str(self.path / "group")}

    def new_start(self) -> None:
        """Drop the previous start's files and make a fresh ipc directory for the next."""
        if self.starts:
            self._drop(self.starts)
        self.starts += 1
        fd = safefs.make_dir(self.path, self.ipc_dir.name, mode=0o700)
        try:
            if self.uid is not None:
                os.fchown(fd, self.uid, self.uid)
        finally:
            os.close(fd)

    def seal_connection_file(self) -> None:
        """After jupyter_client wrote it (0600, the server's): readable by the kernel's uid
        through its group, writable by nobody but the server."""
        if self.uid is None:
            return  # the kernel is the server's own uid: the view alone keeps others out
        fd = safefs.open_dir(self.path)
        try:
            safefs.seal_file(fd, self.connection_file.name, uid=os.geteuid(), gid=self.uid,
                             mode=0o440)
        finally:
            os.close(fd)

    def _drop(self, start: int) -> None:
        safefs.remove_dir(self.path, f"ipc-{start}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path / f"connection-{start}.json")

    def remove(self) -> None:
        safefs.remove_dir(self.path.parent, self.path.name)
