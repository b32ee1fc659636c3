"""Per-kernel cgroups (memory, pids, cpu): created where the hierarchy is writable, else absent."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

V1_MOUNT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "pids", "cpu")
CFS_PERIOD_US = 100_000
CFS_MIN_QUOTA_US = 1_000  # the kernel refuses a smaller quota (EINVAL)


def _own_path(controller: str) -> str:
    """This process's cgroup path in a v1 hierarchy (``/`` in most containers)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if controller in names.split(","):
                return path
    return "/"


def writable_bases() -> dict[str, Path]:
    """controller -> the v1 directory under which we may create kernel cgroups.

    Only cgroup v1 is used: on v2 a child group needs controllers delegated to a cgroup this
    process does not live in, which a plain server rarely has; it is reported as unavailable.
    """
    bases = {}
    for controller in CONTROLLERS:
        mount = V1_MOUNT / controller
        base = mount / _own_path(controller).lstrip("/")
        if (mount / "cgroup.procs").exists() and os.access(base, os.W_OK):
            bases[controller] = base
    return bases


def cfs_quota_us(millicores: int) -> int:
    """CPU time per ``CFS_PERIOD_US`` for a share in millicores (1000 = one full core)."""
    return max(CFS_MIN_QUOTA_US, millicores * CFS_PERIOD_US // 1000)


def _cpu_group(d: Path, millicores: int) -> Path | None:
    """Apart from memory and pids: a parent with a smaller quota refuses ours (EINVAL), and
    that must cost the kernel its CPU limit only, not the other two."""
    try:
        d.mkdir(parents=True, exist_ok=True)
        (d / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
        (d / "cpu.cfs_quota_us").write_text(str(cfs_quota_us(millicores)))
    except OSError:
        with contextlib.suppress(OSError):
            d.rmdir()
        return None
    return d


@dataclass
class KernelCgroup:
    dirs: list[Path]
    controllers: list[str]

    @classmethod
    def create(cls, name: str, *, memory: int, pids: int, cpu: int = 0) -> KernelCgroup | None:
        bases = writable_bases()
        dirs, names = [], []
        try:
            if "memory" in bases and memory > 0:
                d = bases["memory"] / "icpy" / name
                d.mkdir(parents=True, exist_ok=True)
                (d / "memory.limit_in_bytes").write_text(str(memory))
                # Without this, swap lets a kernel go far past its limit before the OOM kill.
                with contextlib.suppress(OSError):
                    (d / "memory.memsw.limit_in_bytes").write_text(str(memory))
                dirs.append(d)
                names.append("memory")
            if "pids" in bases and pids > 0:
                d = bases["pids"] / "icpy" / name
                d.mkdir(parents=True, exist_ok=True)
                (d / "pids.max").write_text(str(pids))
                dirs.append(d)
                names.append("pids")
        except OSError:
            for d in reversed(dirs):
                with contextlib.suppress(OSError):
                    d.rmdir()
            return None
        if "cpu" in bases and cpu > 0 and (cpu_dir := _cpu_group(bases["cpu"] / "icpy" / name, cpu)):
            dirs.append(cpu_dir)
            names.append("cpu")
        return cls(dirs, names) if dirs else None

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        return found

    def oom_killed(self) -> bool:
        for d in self.dirs:
            with contextlib.suppress(OSError):
                for line in (d / "memory.oom_control").read_text().splitlines():
                    if line.startswith("oom_kill ") and int(line.split()[1]) > 0:
                        return True
        return False

    async def kill(self, timeout: float = 2.0) -> None:
        """SIGKILL every member until none is left (v1 has no cgroup.kill; forks race us)."""
        deadline = time.monotonic() + timeout
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.02)

    async def remove(self) -> None:
        for d in self.dirs:
            for _ in range(50):  # rmdir fails while dying members are still being reaped
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    await asyncio.sleep(0.02)
