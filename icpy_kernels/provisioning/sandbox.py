"""``icpy-sandbox``: a LocalProvisioner that launches the kernel inside the strongest sandbox here.

Named in a kernelspec's metadata (``{"kernel_provisioner": {"provisioner_name": "icpy-sandbox",
"config": {...}}}``) or injected by the bridge, it works for any jupyter_client front end. Tiers:
A ``bwrap`` (namespaces, read-only root, private /tmp, no network), B ``landlock`` (read-only
root through Landlock, TCP denied on ABI >= 4), C ``rlimits`` (only limits and a uid).
Each adds a dedicated uid (when the server is root), rlimits, cgroup limits (memory, pids,
cpu) where writable, and the launcher's seccomp filter where it works (on B and C, what isolates
the network).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning import LocalProvisioner
from jupyter_core.paths import jupyter_runtime_dir
from traitlets import Bool, Int, List, Unicode

from . import defaults, policy, quota, safefs, view
from .cgroups import KernelCgroup
from .memory import session_report, uses_rlimit_as
from .private import PrivateDir
from .probe import TIER_LETTER, Capabilities, choose_tier, probe
from .quota import QuotaWatcher
from .uids import UidLease, kill_uid, parse_range, tasks_of

# Places any uid may write on the host: swept of a dedicated uid's files when its lease
# ends on tier C (A and B let a kernel write only its workspace and ipc directory).
SHARED_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue")


class SandboxError(RuntimeError):
    """The sandbox cannot give what was asked (e.g. network isolation on tier C)."""


class SandboxProvisioner(LocalProvisioner):
    tier = Unicode("auto", config=True, help="auto (strongest available), bwrap, landlock or rlimits")
    network = Bool(False, config=True, help="let the kernel use the network")
    memory = Int(defaults.MEMORY, config=True, help="bytes of memory (cgroup and/or RLIMIT_AS: see memory.py)")
    processes = Int(defaults.PROCESSES, config=True, help="processes and threads (pids cgroup / RLIMIT_NPROC)")
    cpu = Int(defaults.CPU, config=True, help="CPU in millicores, 1000 = one core (cpu cgroup; 0 = no limit)")
    file_size = Int(defaults.FILE_SIZE, config=True, help="largest file the kernel may write (RLIMIT_FSIZE)")
    open_files = Int(defaults.OPEN_FILES, config=True, help="open file descriptors (RLIMIT_NOFILE)")
    disk_quota = Int(defaults.DISK_QUOTA, config=True, help="bytes the kernel may write (watched while it runs); also /tmp's size")
    workspace = Unicode("", config=True, help="the kernel's read-write directory, its cwd and HOME")
    workspace_root = Unicode("", config=True, help="where a workspace is made when none is given")
    keep_workspace = Bool(False, config=True, help="keep the workspace when the kernel shuts down")
    require_isolation = Bool(False, config=True, help="refuse tier C (no filesystem/network isolation)")
    uid_range = Unicode(defaults.UID_RANGE, config=True, help="uids leased to kernels when the server is root")
    env_allow = List(Unicode(), config=True, help="extra environment variables passed through")
    ro_paths = List(Unicode(), config=True, help="host paths added read-only to the sandbox's view")
    hide_paths = List(Unicode(), config=True, help="host directories covered if inside the view "
                                                   "(the history database's, the server's log)")

    _caps: Capabilities | None = None
    _chosen: str = ""
    _lease: UidLease | None = None
    _cgroup: KernelCgroup | None = None
    _private: PrivateDir | None = None
    _workspace: Path | None = None
    _runtime: list[str] = []
    _seen: view.View | None = None  # this start's view of the host (pre_launch)
    _quota: QuotaWatcher | None = None
    _quota_stop: int | None = None  # usage when the watcher stopped the kernel, until asked
    report: dict[str, Any] = {}

    # -- setup --------------------------------------------------------------------
    @property
    def uid(self) -> int | None:
        return self._lease.uid if self._lease else None

    async def _prepare(self) -> None:
        """Once per provisioner (restarts reuse it): tier, uid, workspace, cgroup."""
        caps = self._caps = await probe()
        try:
            self._chosen = choose_tier(caps, self.tier)
        except ValueError as exc:
            raise SandboxError(str(exc)) from exc
        if self.require_isolation and self._chosen == "rlimits":
            raise SandboxError(
                "the sandbox is required but only tier C (rlimits) is available here: "
                f"{caps.bwrap_error or 'bwrap unusable'}; Landlock ABI {caps.landlock_abi}")
        if not self.network and not caps.network_isolation(self._chosen):
            why = (f"{caps.bwrap_error or 'no bwrap'}; no seccomp filter: {caps.seccomp_error}"
                   if self.tier == "auto" else f"the tier was forced; no seccomp filter: {caps.seccomp_error}")
            raise SandboxError(
                f"network isolation cannot be enforced on sandbox tier {self._chosen!r} ({why}): "
                "use a stronger tier (install bubblewrap), or allow this kernel the network")
        name = f"sbx-{(self.kernel_id or os.urandom(6).hex())[:12]}"
        if caps.root:
            self._lease = UidLease.acquire(parse_range(self.uid_range))
        self._workspace = await asyncio.to_thread(self._make_workspace, name)
        self._private = PrivateDir(jupyter_runtime_dir(), name, uid=self.uid, home=str(self._workspace))
        self._cgroup = KernelCgroup.create(name, memory=self.memory, pids=self.processes, cpu=self.cpu)
        if not caps.root and self._chosen == "rlimits":
            _undumpable()

    def _make_workspace(self, name: str) -> Path:
        """The workspace, made or reused, and given (all of it) to this kernel's uid.

        Its parent is the server's; the workspace itself is opened without following a
        symlink and reused only if it is ours or a sandbox uid's (a kept workspace)."""
        root = Path(self.workspace_root or Path(tempfile.gettempdir()) / "icpy-workspaces")
        target = Path(self.workspace) if self.workspace else root / name
        parent = Path(os.path.realpath(target.parent))
        parent.mkdir(parents=True, exist_ok=True)
        owners = parse_range(self.uid_range) if self.uid is not None else ()
        fd = safefs.make_dir(parent, target.name, mode=0o700, owners=owners)
        try:
            if self.uid is not None:
                safefs.chown_tree(fd, self.uid, self.uid, top_mode=0o700)
        finally:
            os.close(fd)
        return parent / target.name

    def _retire_workspace(self) -> None:
        """A kept workspace goes back to the server, 0700: no later kernel, whatever uid it
        is leased, can read it (a session of the same name gets it back at its start)."""
        assert self._workspace is not None
        with contextlib.suppress(OSError):
            fd = safefs.open_dir(self._workspace)
            try:
                safefs.chown_tree(fd, os.geteuid(), os.getegid(), top_mode=0o700)
            finally:
                os.close(fd)

    def _writable_paths(self) -> list[Path]:
        """The host directories this kernel can write: what the disk quota counts."""
        paths = [self._workspace] if self._workspace else []
        if self._private is not None and self._private.starts:
            paths.append(self._private.ipc_dir)
        return paths

    def _view(self) -> view.View:
        assert self._private is not None and self._workspace is not None
        return view.build(
            runtime=self._runtime, extra=self.ro_paths, network=self.network,
            private_read=[str(self._private.connection_file)],
            writable=[str(self._workspace), str(self._private.ipc_dir)],
            files=self._private.etc_files, hide=self.hide_paths)

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        if self._private is None:
            await self._prepare()
        assert self._private is not None and self._workspace is not None
        km = self.parent
        await asyncio.to_thread(self._private.new_start)
        if km is not None:
            # The kernel may have no network at all: ZeroMQ over unix sockets in a directory
            # only it and the server can reach. A fresh connection file each start: one the
            # server wrote, that the kernel can read and never replace.
            km.cache_ports = False
            km.transport = "ipc"
            km.ip = str(self._private.ipc_dir / "k")
            km.connection_file = str(self._private.connection_file)
        kwargs = await super().pre_launch(**kwargs)
        if km is not None:
            self._private.seal_connection_file()
        language = (self.kernel_spec.language or "") if self.kernel_spec else ""
        server_path = (kwargs.get("env") or {}).get("PATH", os.defpath)
        self._runtime = policy.runtime_paths(kwargs.get("cmd") or [sys.executable], server_path)
        self._seen = self._view()
        kwargs["env"] = policy.sandbox_env(
            kwargs.get("env") or {}, workspace=str(self._workspace),
            extra_allow=tuple(self.env_allow), language=language, memory=self.memory,
            tmpdir="/tmp" if self._chosen == "bwrap" else str(self._workspace),
            rlimit_as=self._uses_rlimit_as(language))
        # Only what the kernel can see: not the server's ~/.cargo/bin or pyenv shims.
        kwargs["env"]["PATH"] = view.path_env(server_path, self._seen.roots())
        kwargs["cwd"] = str(self._workspace)
        return kwargs

    def _uses_rlimit_as(self, language: str) -> bool:
        return uses_rlimit_as(language, cgroup=self._has_memory_cgroup)

    @property
    def _has_memory_cgroup(self) -> bool:
        return self._cgroup is not None and "memory" in self._cgroup.controllers

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        assert self._caps is not None and self._seen is not None and self._workspace is not None
        caps, ws, seen = self._caps, str(self._workspace), self._seen
        language = (self.kernel_spec.language or "") if self.kernel_spec else ""
        counted = self._own_count
        limits = policy.rlimits(
            memory=self.memory, processes=self.processes, file_size=self.file_size,
            open_files=self.open_files, rlimit_as=self._uses_rlimit_as(language),
            count_processes=counted, shared_tasks=0 if counted else tasks_of(os.getuid()),
            language=language, disk_quota=self.disk_quota)
        inner: dict[str, Any] = {"rlimits": limits, "uid": self.uid, "cwd": ws, "env": {}}
        outer = {"cgroup_procs": self._cgroup.procs_files if self._cgroup else []}
        if caps.seccomp:
            inner["seccomp"] = {"families": policy.socket_families(self._chosen, self.network)}
        if self._chosen == "bwrap":
            # Our pid namespace's init is bwrap: ipykernel's parent poller must not watch it.
            inner["env"]["JPY_PARENT_PID"] = "1"
            mount_args = view.bwrap_args(
                seen, workspace=ws, network=self.network,
                tmp_size=min(self.disk_quota, self.memory) if self.memory > 0 else self.disk_quota)
            full = policy.bwrap_command(caps.bwrap or "bwrap", root=caps.root, kernel_cmd=cmd,
                                        outer=outer, inner=inner, mount_args=mount_args)
        else:
            self._check_reachable()
            if self._chosen == "landlock":
                inner["landlock"] = {"abi": caps.landlock_abi, "network": self.network,
                                     "read": [*seen.read, "/proc", "/dev", "/etc/passwd", "/etc/group"],
                                     "writable": [*seen.writable, "/dev/null"]}
            full = policy.direct_command(kernel_cmd=cmd, spec={**outer, **inner},
                                         supervise=self._supervised)
        info = await super().launch_kernel(full, **kwargs)
        self.report = self._describe(limits, inner.get("seccomp"))
        self._watch_quota()
        return info

    @property
    def _own_count(self) -> bool:
        """RLIMIT_NPROC counts only this kernel: a dedicated uid, or bwrap's user namespace."""
        return self.uid is not None or (self._chosen == "bwrap" and not (self._caps and self._caps.root))

    @property
    def _supervised(self) -> bool:
        """Without a pid namespace or a dedicated uid to kill, the launcher stays as the
        kernel's subreaper so that its daemons can still be found and killed."""
        return self._chosen != "bwrap" and self.uid is None

    def _check_reachable(self) -> None:
        if self.uid is None:
            return
        for path in self._runtime:
            if hidden := policy.hidden_ancestor(path):
                raise SandboxError(
                    f"{path} is inside {hidden}, which the sandbox uid cannot enter; tier "
                    f"{self._chosen!r} cannot hide it behind a mount (install bubblewrap, or "
                    "install Python and icpy_kernels where other users can read them)")

    def _describe(self, limits: dict[str, int], seccomp: dict[str, Any] | None) -> dict[str, Any]:
        cg = self._cgroup.controllers if self._cgroup else []
        return {
            "seccomp": {"enabled": seccomp is not None,
                        "socket_families": policy.family_names(seccomp["families"]) if seccomp else None},
            "tier": self._chosen, "tier_letter": TIER_LETTER[self._chosen],
            "uid": self.uid if self.uid is not None else os.getuid(),
            "dedicated_uid": self.uid is not None,
            "network": "allowed" if self.network else "isolated",
            "workspace": str(self._workspace),
            "limits": {
                "memory": session_report(
                    self.memory, (self.kernel_spec.language or "") if self.kernel_spec else "",
                    cgroup=self._has_memory_cgroup, rlimit_as=limits.get("RLIMIT_AS", 0)),
                "processes": {"count": self.processes, "enforced_by":
                              (["cgroup"] if "pids" in cg else []) + (["rlimit_nproc" if self._own_count else "rlimit_nproc_shared_uid"]
                                                                        if "RLIMIT_NPROC" in limits else [])},
                "cpu": {"millicores": self.cpu, "enforced_by": ["cgroup"] if "cpu" in cg else []},
                "file_size": {"bytes": limits.get("RLIMIT_FSIZE", self.file_size), "enforced_by": ["rlimit_fsize"] if "RLIMIT_FSIZE" in limits else []},
                "open_files": {"count": self.open_files, "enforced_by": ["rlimit_nofile"] if "RLIMIT_NOFILE" in limits else []},
                "disk_quota": {"bytes": self.disk_quota, **quota.enforcement(self.disk_quota)},
            },
        }

    # -- signals and teardown ------------------------------------------------------
    def _kernel_pid(self) -> int | None:
        """The kernel's host pid: bwrap (our child) -> its namespace init -> the kernel."""
        pid = self.pid
        for _ in range(2):
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except (OSError, TypeError):
                return None
            if not children:
                return None
            pid = int(children[0])
        return pid

    async def send_signal(self, signum: int) -> None:
        # bwrap forwards no signal. The kernel shares its group with the namespace's init
        # (--new-session), which ignores signals from outside it but SIGKILL.
        if self.process and self._chosen == "bwrap" and signum != signal.SIGKILL:
            kernel = self._kernel_pid()
            if kernel is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(os.getpgid(kernel), signum)
                return
        await super().send_signal(signum)

    async def kill(self, restart: bool = False) -> None:
        await self._unwatch_quota()
        if self._supervised and self.process and self.process.poll() is None:
            # SIGKILL would orphan the daemons: the supervisor kills its tree on SIGTERM.
            with contextlib.suppress(OSError):
                self.process.send_signal(signal.SIGTERM)
            for _ in range(100):
                if self.process.poll() is not None:
                    break
                await asyncio.sleep(0.02)
        await super().kill(restart)
        await self._kill_everything()

    async def _kill_everything(self) -> None:
        """Whatever the kernel left behind (setsid + double fork included) dies here."""
        if self._cgroup is not None:
            await self._cgroup.kill()
        if self.uid is not None:
            await kill_uid(self.uid)

    async def cleanup(self, restart: bool = False) -> None:
        await self._unwatch_quota()
        await super().cleanup(restart)
        await self._kill_everything()
        if restart:
            return
        if self._cgroup is not None:
            await self._cgroup.remove()
            self._cgroup = None
        if self._private is not None:
            await asyncio.to_thread(self._private.remove)
            self._private = None
        if self._workspace is not None:
            # Before the uid goes back: nothing of this session stays readable to it.
            if self.keep_workspace:
                await asyncio.to_thread(self._retire_workspace)
            else:
                await asyncio.to_thread(shutil.rmtree, self._workspace, True)
        if self._lease is not None:
            if self._chosen == "rlimits":
                await asyncio.to_thread(safefs.remove_owned_by, self._lease.uid, SHARED_WRITABLE)
            await self._lease.release()
            self._lease = None

    # -- the disk quota, held while the kernel runs (quota.py) -------------------------
    def _watch_quota(self) -> None:
        if self.disk_quota > 0:
            paths = self._writable_paths()
            self._quota = QuotaWatcher(lambda: safefs.total_usage(paths), self.disk_quota, self._over_quota)
            self._quota.start()

    async def _unwatch_quota(self) -> None:
        if self._quota is not None:
            await self._quota.stop()

    async def _over_quota(self, used: int) -> None:
        # Every process dies, detached writers included; the session finds its kernel dead.
        self._quota_stop = used
        await self.kill()

    def take_quota_stop(self) -> int | None:
        """The usage at which the watcher stopped the kernel, once (then None again)."""
        used, self._quota_stop = self._quota_stop, None
        return used

    # -- for the bridge -------------------------------------------------------------
    async def workspace_usage(self) -> int:
        return await asyncio.to_thread(safefs.total_usage, self._writable_paths())

    def oom_killed(self) -> bool:
        return bool(self._cgroup and self._cgroup.oom_killed())

    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info["sandbox"] = self.report
        return info


def _undumpable() -> None:
    """Same-uid kernels (tier C, non-root) must not read our /proc environ, memory or fds."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
