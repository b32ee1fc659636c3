"""How a kernel's memory limit is enforced (cgroup, RLIMIT_AS, Node's heap flag), and the
report that says so: pure, so the provisioner, /api/health and ``icpy doctor`` agree."""

from __future__ import annotations

from typing import Any

# V8 reserves its JIT code range up front: 512 MiB of PROT_NONE address space on x64 (Node 20:
# the largest mapping of a fresh ``node``), committed only as code is compiled, and it aborts
# at start ("Failed to reserve virtual memory for CodeRange") without it: a bare node needs
# about 740 MiB of address space. So Node's RLIMIT_AS is the limit plus this reservation.
# Each worker_thread is an isolate with a code range of its own, so under RLIMIT_AS a Worker
# needs that much more and usually fails: only where no memory cgroup holds the kernel.
NODE_CODE_RANGE = 512 << 20


def is_node(language: str) -> bool:
    return language.lower() in ("javascript", "typescript")


def uses_rlimit_as(language: str, *, cgroup: bool) -> bool:
    """Whether every process of the kernel gets RLIMIT_AS.

    With a memory cgroup holding the kernel's total, Python still gets it (a MemoryError
    beats an OOM kill), Node and Bash do not (Node's code ranges, per isolate, and whatever
    Bash runs). Without one, RLIMIT_AS is the only thing that caps memory: every kernel."""
    return not cgroup or language.lower().startswith("python")


def address_space(memory: int, language: str) -> int:
    """RLIMIT_AS for each process of a kernel of ``language``: 0 for none."""
    if memory <= 0:
        return 0
    return memory + NODE_CODE_RANGE if is_node(language) else memory


def session_report(memory: int, language: str, *, cgroup: bool, rlimit_as: int) -> dict[str, Any]:
    """``sandbox.limits.memory`` of a session. ``scope`` says what the bytes bound: the whole
    kernel (a cgroup counts every process together) or each process alone (RLIMIT_AS: N
    processes may hold N times the limit); None when nothing enforces it. ``rlimit_as_bytes``:
    each process's address-space cap (for Node, the limit plus V8's code range), or None."""
    enforced = (["cgroup"] if cgroup else []) + (["rlimit_as"] if rlimit_as else [])
    if is_node(language) and memory > 0:
        enforced.append("node_heap")
    scope = "per_kernel" if cgroup else "per_process" if rlimit_as else None
    return {"bytes": memory, "enforced_by": enforced, "scope": scope, "rlimit_as_bytes": rlimit_as or None}


def host_report(cgroup_controllers: list[str]) -> dict[str, Any]:
    """For /api/health and ``icpy doctor``: what a new session's memory limit will mean."""
    if "memory" in cgroup_controllers:  # and RLIMIT_AS for Python kernels (uses_rlimit_as)
        return {"enforced_by": ["cgroup"], "scope": "per_kernel"}
    return {"enforced_by": ["rlimit_as"], "scope": "per_process"}
