"""What this machine lets the sandbox enforce, probed once per process, and the tier it picks."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import cgroups

TIERS = ("bwrap", "landlock", "rlimits")  # strongest first
TIER_LETTER = {"bwrap": "A", "landlock": "B", "rlimits": "C"}


@dataclass
class Capabilities:
    root: bool
    bwrap: str | None = None
    bwrap_error: str | None = None
    landlock_abi: int = 0
    seccomp: bool = False
    seccomp_error: str | None = None
    cgroup_controllers: list[str] = field(default_factory=list)

    @property
    def tiers(self) -> list[str]:
        available = []
        if self.bwrap:
            available.append("bwrap")
        if self.landlock_abi >= 1:
            available.append("landlock")
        available.append("rlimits")
        return available

    def network_isolation(self, tier: str) -> bool:
        """Namespaces (A), or seccomp allowing only unix sockets (B, C). Landlock's TCP rules
        (ABI >= 4) alone are not enough: UDP gets through."""
        return tier == "bwrap" or self.seccomp

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tiers": self.tiers}


def landlock_abi() -> int:
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "aarch64"):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    abi = libc.syscall(444, None, ctypes.c_size_t(0), 1)  # LANDLOCK_CREATE_RULESET_VERSION
    return max(abi, 0)


def bwrap_args(*, root: bool) -> list[str]:
    """The namespace part of every tier-A command line (the probe runs exactly this)."""
    args = ["--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try", "--hostname", "icpy-sandbox"]
    if not root:
        # Unprivileged bwrap maps our uid into a new user namespace and drops every cap.
        # As root we skip it: the kernel drops to a dedicated uid instead, a real host uid
        # that rlimits and kill(-1) can count on.
        args.append("--unshare-user")
    return args


async def _try_bwrap(path: str, root: bool) -> str | None:
    cmd = [path, *bwrap_args(root=root), "--unshare-net", "--ro-bind", "/", "/",
           "--proc", "/proc", "--dev", "/dev", "--", "true"]
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 10)
    except (OSError, TimeoutError) as exc:
        return str(exc)
    return None if proc.returncode == 0 else (err.decode(errors="replace").strip() or f"exit {proc.returncode}")


# Run under the launcher's filter: an IP socket must fail with EACCES, a unix socket work.
_SECCOMP_CHECK = (
    "import socket\n"
    "socket.socket(socket.AF_UNIX).close()\n"
    "try:\n    socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "except PermissionError:\n    print('denied')\n"
)


async def _try_seccomp() -> str | None:
    """The launcher's own filter, applied for real in a child: None if it works."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "aarch64"):
        return f"no seccomp filter for {platform.system()} {platform.machine()}"
    launcher = str(Path(__file__).with_name("launch.py"))
    cmd = [sys.executable, "-I", "-S", launcher, "inner", '{"seccomp": {"families": [1]}}', "--",
           sys.executable, "-I", "-S", "-c", _SECCOMP_CHECK]
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 10)
    except (OSError, TimeoutError) as exc:
        return str(exc)
    if proc.returncode == 0 and out.strip() == b"denied":
        return None
    return err.decode(errors="replace").strip() or f"exit {proc.returncode}, output {out!r}"


_cached: Capabilities | None = None


async def probe(refresh: bool = False) -> Capabilities:
    global _cached
    if _cached is not None and not refresh:
        return _cached
    caps = Capabilities(root=os.geteuid() == 0)
    path = shutil.which("bwrap")
    if path is None:
        caps.bwrap_error = "bwrap not installed (apt-get install bubblewrap)"
    elif (error := await _try_bwrap(path, caps.root)) is None:
        caps.bwrap = path
    else:
        caps.bwrap_error = error
    with contextlib.suppress(OSError, AttributeError):
        caps.landlock_abi = landlock_abi()
    caps.seccomp_error = await _try_seccomp()
    caps.seccomp = caps.seccomp_error is None
    caps.cgroup_controllers = sorted(cgroups.writable_bases())
    _cached = caps
    return caps


def choose_tier(caps: Capabilities, wanted: str = "auto") -> str:
    """The strongest available tier, or exactly the one asked for (ValueError if absent)."""
    if wanted == "auto":
        return caps.tiers[0]
    if wanted not in TIERS:
        raise ValueError(f"unknown sandbox tier {wanted!r}; expected auto or one of {', '.join(TIERS)}")
    if wanted not in caps.tiers:
        reason = caps.bwrap_error if wanted == "bwrap" else "Landlock is not available"
        raise ValueError(f"sandbox tier {wanted!r} is not available here: {reason}")
    return wanted
