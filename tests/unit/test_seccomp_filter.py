"""The launcher's seccomp filter, run on a small classic-BPF interpreter: what each syscall gets."""

from __future__ import annotations

import ctypes
import ctypes.util
import struct

import pytest

from icpy_kernels.provisioning import launch, policy

ALLOW = launch.RET_ALLOW
EPERM = launch.RET_ERRNO | launch.EPERM
EACCES = launch.RET_ERRNO | launch.EACCES
ENOSYS = launch.RET_ERRNO | launch.ENOSYS
AF_INET, AF_NETLINK, AF_PACKET, AF_VSOCK = 2, 16, 17, 40
NETLINK_ROUTE, NETLINK_SOCK_DIAG, NETLINK_AUDIT = 0, 4, 9


def run(prog: list[tuple[int, int, int, int]], arch: str, nr: int, *args: int,
        audit: int | None = None) -> int:
    """Evaluate the filter on one seccomp_data (the opcodes it uses; anything else fails)."""
    data = struct.pack("<iIQ6Q", nr, launch.AUDIT_ARCH[arch] if audit is None else audit, 0,
                       *(list(args) + [0] * 6)[:6])
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = prog[pc]
        pc += 1
        if code == 0x20:  # ld [k]
            acc = struct.unpack_from("<I", data, k)[0]
        elif code in (0x15, 0x35, 0x45):  # jeq, jge, jset
            hit = acc == k if code == 0x15 else acc >= k if code == 0x35 else bool(acc & k)
            pc += jt if hit else jf
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_isolated_filter(arch):
    prog = launch.seccomp_program(arch, policy.socket_families("landlock", network=False))
    nr = launch.SYSCALLS[arch]
    assert run(prog, arch, nr["socket"], policy.AF_UNIX, 1) == ALLOW
    for family in (AF_INET, policy.AF_INET6, AF_PACKET, AF_VSOCK):
        assert run(prog, arch, nr["socket"], family, 2) == EACCES, family
    # Netlink: interface listing only (getifaddrs), no sock_diag, audit, netfilter...
    assert run(prog, arch, nr["socket"], AF_NETLINK, 3, NETLINK_ROUTE) == ALLOW
    for protocol in (NETLINK_SOCK_DIAG, NETLINK_AUDIT, 12, 16):
        assert run(prog, arch, nr["socket"], AF_NETLINK, 3, protocol) == EACCES, protocol
    # The kernel reads the family as an int: high bits cannot smuggle AF_UNIX past.
    assert run(prog, arch, nr["socket"], AF_INET | (1 << 32)) == EACCES
    assert run(prog, arch, nr["socketpair"], policy.AF_UNIX) == ALLOW
    assert run(prog, arch, nr["socketpair"], AF_INET) == EACCES
    for name in ("ptrace", "process_vm_readv", "mount", "unshare", "setns", "bpf", "keyctl",
                 "perf_event_open", "io_uring_setup", "open_by_handle_at", "init_module"):
        assert run(prog, arch, nr[name]) == EPERM, name
    sigchld, clone_newuser, clone_newnet = 17, 0x10000000, 0x40000000
    assert run(prog, arch, nr["clone"], sigchld) == ALLOW  # fork
    assert run(prog, arch, nr["clone"], 0x3D0F00) == ALLOW  # glibc's pthread_create flags
    assert run(prog, arch, nr["clone"], sigchld | clone_newuser) == EPERM
    assert run(prog, arch, nr["clone"], clone_newnet) == EPERM
    assert run(prog, arch, nr["clone3"]) == ENOSYS  # glibc falls back to clone
    for ordinary in (0, 1, 59, 63, 221, 260):  # read/write/execve/... on either table
        if ordinary not in nr.values():
            assert run(prog, arch, ordinary) == ALLOW, ordinary
    # Another ABI on the same machine (i386 on x86_64) gets nothing at all.
    assert run(prog, arch, 0, audit=0x40000003) == EPERM


def test_x32_numbers_are_denied():
    prog = launch.seccomp_program("x86_64", [policy.AF_UNIX])
    assert run(prog, "x86_64", launch.X32_SYSCALL_BIT | 41, AF_INET) == EPERM
    assert run(prog, "x86_64", launch.X32_SYSCALL_BIT | 0) == EPERM


def test_families_per_tier_and_network():
    prog = launch.seccomp_program("x86_64", policy.socket_families("bwrap", network=False))
    assert run(prog, "x86_64", 41, AF_INET) == ALLOW  # tier A: only its own empty namespace
    assert run(prog, "x86_64", 41, AF_NETLINK, 3, NETLINK_SOCK_DIAG) == EACCES
    assert run(prog, "x86_64", 41, AF_PACKET) == EACCES
    for tier in ("bwrap", "landlock", "rlimits"):
        families = policy.socket_families(tier, network=True)
        assert families == [policy.AF_UNIX, AF_INET, policy.AF_INET6]
        prog = launch.seccomp_program("x86_64", families)
        assert run(prog, "x86_64", 41, AF_PACKET) == EACCES and run(prog, "x86_64", 41, AF_INET) == ALLOW
    assert policy.socket_families("rlimits", network=False) == [policy.AF_UNIX]
    assert policy.family_names([1, 2, 10]) == ["unix", "inet", "inet6", "netlink_route"]


def test_syscall_numbers_match_libseccomp():
    name = ctypes.util.find_library("seccomp")
    if not name:
        pytest.skip("libseccomp is not installed: nothing to cross-check against")
    lib = ctypes.CDLL(name)
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    for arch, table in launch.SYSCALLS.items():
        for syscall, nr in table.items():
            resolved = lib.seccomp_syscall_resolve_name_arch(launch.AUDIT_ARCH[arch], syscall.encode())
            assert (nr if nr is not None else -1) == (resolved if resolved >= 0 else -1), (arch, syscall)
