"""How the memory limit is enforced with and without a memory cgroup, and what the report says."""

from __future__ import annotations

from icpy_kernels.provisioning import memory, policy

GiB = 1 << 30


def test_without_a_memory_cgroup_every_kernel_gets_rlimit_as():
    for language in ("python", "javascript", "bash"):
        assert memory.uses_rlimit_as(language, cgroup=False), language
    # With one, only Python keeps it (a MemoryError rather than an OOM kill).
    assert memory.uses_rlimit_as("python", cgroup=True)
    assert not memory.uses_rlimit_as("javascript", cgroup=True)
    assert not memory.uses_rlimit_as("bash", cgroup=True)


def test_node_address_space_adds_v8s_code_range():
    node = policy.rlimits(memory=GiB, processes=0, file_size=0, open_files=0, rlimit_as=True,
                          count_processes=True, language="javascript")
    assert node["RLIMIT_AS"] == GiB + memory.NODE_CODE_RANGE
    python = policy.rlimits(memory=GiB, processes=0, file_size=0, open_files=0, rlimit_as=True,
                            count_processes=True, language="python")
    assert python["RLIMIT_AS"] == GiB
    assert memory.address_space(0, "javascript") == 0


def test_session_report_says_the_scope():
    assert memory.session_report(GiB, "python", cgroup=True, rlimit_as=GiB) == {
        "bytes": GiB, "enforced_by": ["cgroup", "rlimit_as"], "scope": "per_kernel", "rlimit_as_bytes": GiB}
    assert memory.session_report(GiB, "javascript", cgroup=True, rlimit_as=0) == {
        "bytes": GiB, "enforced_by": ["cgroup", "node_heap"], "scope": "per_kernel", "rlimit_as_bytes": None}
    node_as = GiB + memory.NODE_CODE_RANGE
    assert memory.session_report(GiB, "javascript", cgroup=False, rlimit_as=node_as) == {
        "bytes": GiB, "enforced_by": ["rlimit_as", "node_heap"], "scope": "per_process",
        "rlimit_as_bytes": node_as}
    assert memory.session_report(0, "bash", cgroup=False, rlimit_as=0) == {
        "bytes": 0, "enforced_by": [], "scope": None, "rlimit_as_bytes": None}


def test_host_report_follows_the_memory_cgroup():
    assert memory.host_report(["cpu", "memory", "pids"]) == {"enforced_by": ["cgroup"], "scope": "per_kernel"}
    assert memory.host_report(["pids"]) == {"enforced_by": ["rlimit_as"], "scope": "per_process"}
