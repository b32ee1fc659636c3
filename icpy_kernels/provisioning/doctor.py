"""``icpy doctor``: what the sandbox can enforce on this machine, tier by tier and limit by limit."""

from __future__ import annotations

from ..config import Settings
from .bridge import SandboxPolicy
from .memory import NODE_CODE_RANGE


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def _cpu(millicores: int, controllers: list[str]) -> str:
    if millicores <= 0:
        return "no limit (--cpu-limit 0)"
    if "cpu" not in controllers:
        return f"{millicores} millicores asked, NOT enforced (no writable cpu cgroup)"
    return f"{millicores} millicores per kernel (cpu cgroup, CFS quota)"


def _seccomp_line(info: dict, tier: str) -> str:
    if not info["seccomp"]:
        return f"unavailable ({info['seccomp_error']})"
    sockets = "unix sockets only when isolated" if tier != "bwrap" else "no exotic socket families"
    return f"filter on every tier (no ptrace, mount, namespaces, bpf, io_uring, ...; {sockets})"


def _disk(quota: int, how: dict) -> str:
    if quota <= 0:
        return "no limit (--disk-quota 0)"
    return (f"{_size(quota)} per workspace (watcher, every >= {how['watch_interval']} s while code runs: "
            "the kernel's processes stop past it; checked after each execution; RLIMIT_FSIZE per file)")


def _view(tier: str, view: dict) -> str:
    if tier == "rlimits":
        return "the whole host, with the kernel uid's permissions (tier C)"
    extra = f" + {', '.join(view['extra'])}" if view["extra"] else " (--sandbox-ro-path adds paths)"
    return (f"allow-list, read-only: {', '.join(view['system'])}, interpreter and package "
            f"prefixes, {len(view['etc'])} /etc files{extra}")


async def report(settings: Settings) -> tuple[str, int]:
    """The text to print and the exit status (1 when ``--sandbox require`` cannot be met)."""
    policy = SandboxPolicy(settings)
    try:
        info = await policy.describe()
        mode = settings.sandbox
        lines = [f"sandbox mode:      {mode}"]
        if mode == "off":
            info = await SandboxPolicy(Settings(token="x", sandbox="auto", sandbox_tier=settings.sandbox_tier)).describe()
            lines.append("  (kernels run unsandboxed; below is what --sandbox auto would give)")
        tier = info["tier"]
        lines += [
            f"tier:              {info['tier_letter']} ({tier}); available: {', '.join(info['available_tiers'])}"
            f"{'' if info['tier_requested'] == 'auto' else ' (forced by --sandbox-tier)'}",
            f"bubblewrap:        {'usable' if 'bwrap' in info['available_tiers'] else info['bwrap_error']}",
            f"landlock ABI:      {info['landlock_abi'] or 'none'}",
            f"seccomp:           {_seccomp_line(info, tier)}",
            f"network:           {'isolated by default' if info['network_isolation'] else 'NOT isolatable: sessions are refused unless they ask for network'}"
            f"{' (--allow-network lets a session ask)' if settings.allow_network else ''}",
            f"kernel uid:        {'a dedicated uid per kernel from ' + settings.sandbox_uid_range if info['dedicated_uid'] else 'the server uid (in a user namespace on tier A)'}",
            f"cgroups:           {', '.join(info['cgroup_controllers']) or 'none writable (limits by rlimits only)'}",
            f"host view:         {_view(tier, info['view'])}",
        ]
        limits = info["limits"]
        mem = limits["memory"]
        mem_by = (f"{_size(mem)} per kernel, all its processes together (memory cgroup; and "
                  "RLIMIT_AS for Python kernels)" if info["memory"]["scope"] == "per_kernel" else
                  f"{_size(mem)} per PROCESS, not per kernel (RLIMIT_AS only, no writable memory "
                  f"cgroup: n processes may hold n x {_size(mem)}; Node gets "
                  f"{_size(mem + NODE_CODE_RANGE)}, V8 reserves {_size(NODE_CODE_RANGE)} for code)")
        proc_by = ("pids cgroup + " if "pids" in info["cgroup_controllers"] else "") + (
            "RLIMIT_NPROC" if info["dedicated_uid"] or tier == "bwrap"
            else "RLIMIT_NPROC over all the server uid's tasks (shared uid)")
        lines += [
            f"  memory:          {mem_by if mem > 0 else 'no limit (--memory-limit 0)'}",
            f"  processes:       {limits['processes']} per kernel ({proc_by})",
            f"  cpu:             {_cpu(limits['cpu'], info['cgroup_controllers'])}",
            f"  file size:       {_size(limits['file_size'])} (RLIMIT_FSIZE)",
            f"  open files:      {limits['open_files']} (RLIMIT_NOFILE)",
            f"  disk quota:      {_disk(limits['disk_quota'], info['disk_quota_enforcement'])}",
        ]
        failed = mode == "require" and tier == "rlimits"
        if failed:
            lines.append("ERROR: --sandbox require, but only tier C is available")
        if info["tier_error"] and mode != "off":
            failed = True
            lines.append(f"ERROR: {info['tier_error']}: kernels will be refused")
        return "\n".join(lines), int(failed)
    finally:
        policy.close()
