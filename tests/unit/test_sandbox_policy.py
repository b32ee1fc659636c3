"""The sandbox's pure parts: session options, environment, rlimits, mounts, workspaces, tiers."""

from __future__ import annotations

import os

import pytest

from icpy_kernels.errors import ValidationError
from icpy_kernels.provisioning import policy, view
from icpy_kernels.provisioning.options import SessionSandbox, parse_session_sandbox
from icpy_kernels.provisioning.probe import Capabilities, choose_tier
from icpy_kernels.provisioning.workspace import resolve_inside, workspace_for


def test_session_options_parse_and_reject():
    assert parse_session_sandbox({}) == SessionSandbox()
    opts = parse_session_sandbox({"network": True, "limits": {"memory": 1 << 20}})
    assert opts.network and opts.limits == {"memory": 1 << 20}
    for raw, field in (({"sandbox": "no"}, "config.sandbox"), ({"limits": {"gpu": 1}}, "config.limits.gpu"),
                       ({"limits": {"memory": -1}}, "config.limits.memory"), ({"limits": []}, "config.limits")):
        with pytest.raises(ValidationError) as info:
            parse_session_sandbox(raw)
        assert info.value.field == field


def test_environment_is_an_allow_list():
    env = policy.sandbox_env({"PATH": "/bin", "ICPY_TOKEN": "secret", "AWS_SECRET": "x", "LC_ALL": "C",
                              "MYVAR": "1"}, workspace="/ws", extra_allow=("MY*",), rlimit_as=True)
    assert env["HOME"] == "/ws" and env["LC_ALL"] == "C" and env["MYVAR"] == "1"
    assert "ICPY_TOKEN" not in env and "AWS_SECRET" not in env and env["MALLOC_ARENA_MAX"] == "2"
    node = policy.sandbox_env({}, workspace="/ws", language="javascript", memory=1 << 30)
    assert node["NODE_OPTIONS"] == "--max-old-space-size=768"


def test_rlimits_follow_what_can_be_counted():
    limits = policy.rlimits(memory=1 << 30, processes=64, file_size=10, open_files=100,
                            rlimit_as=False, count_processes=False)
    assert limits == {"RLIMIT_CORE": 0, "RLIMIT_FSIZE": 10, "RLIMIT_NOFILE": 100}
    limits = policy.rlimits(memory=1 << 30, processes=64, file_size=0, open_files=0,
                            rlimit_as=True, count_processes=True)
    assert limits["RLIMIT_AS"] == 1 << 30 and limits["RLIMIT_NPROC"] == 64


def test_view_binds_only_the_allow_list_and_the_kernels_own_files(tmp_path):
    runtime = tmp_path / "venv"
    (runtime / "bin").mkdir(parents=True)
    secret = runtime / "secrets"
    secret.mkdir()
    seen = view.build(runtime=[str(runtime)], private_read=["/nonexistent/conn.json"],
                      writable=["/tmp/ws/a", "/tmp/rt/ipc-1"], files={"/etc/passwd": "/p/passwd"},
                      hide=[str(secret), "/root/elsewhere"])
    args = view.bwrap_args(seen, workspace="/tmp/ws/a", tmp_size=0, network=False)
    joined = " ".join(args)
    assert args[0] == "--unshare-net" and "--ro-bind / /" not in joined
    assert f"--ro-bind {runtime} {runtime}" in joined and "--ro-bind /usr /usr" in joined
    assert "/nonexistent" not in joined  # what this host lacks is left out
    assert "--tmpfs /tmp" in joined and "--perms 0755 --dir /tmp/ws" in joined
    assert "--bind /tmp/ws/a /tmp/ws/a" in joined and "--bind /tmp/rt/ipc-1 /tmp/rt/ipc-1" in joined
    assert "--ro-bind /p/passwd /etc/passwd" in joined and "/etc/resolv.conf" not in joined
    assert "/sys/fs/cgroup" not in joined and "--ro-bind /etc /etc" not in joined
    assert f"--tmpfs {secret}" in joined and "/root/elsewhere" not in joined
    assert args[-2:] == ["--chdir", "/tmp/ws/a"]
    with_net = view.bwrap_args(view.build(runtime=[], network=True), workspace="/w", tmp_size=0,
                               network=True)
    assert "--unshare-net" not in with_net and (
        "/etc/resolv.conf" in with_net or not os.path.exists("/etc/resolv.conf"))


def test_kernel_path_keeps_only_entries_inside_the_view():
    path = "/root/.cargo/bin:/opt/venv/bin:/root/.pyenv/shims:/usr/local/bin:/usr/bin:/bin:rel"
    assert view.path_env(path, ["/usr", "/bin", "/opt/venv"]) == "/opt/venv/bin:/usr/local/bin:/usr/bin:/bin"
    assert view.path_env("/root/x", ["/usr"]) == "/usr/local/bin:/usr/bin:/bin"


def test_workspace_names_and_escapes(tmp_path):
    assert workspace_for("/r", "..").parent.as_posix() == "/r"
    assert workspace_for("/r", "a:b") != workspace_for("/r", "a_b")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link").symlink_to("/etc")
    assert resolve_inside(tmp_path, "sub") == str(tmp_path / "sub")
    for bad in ("link", "../", "/etc", "sub/../../x"):
        with pytest.raises(ValueError):
            resolve_inside(tmp_path, bad)


def test_tier_choice():
    caps = Capabilities(root=True, bwrap="/usr/bin/bwrap", landlock_abi=3)
    assert choose_tier(caps) == "bwrap" and caps.network_isolation("bwrap")
    assert not caps.network_isolation("landlock") and not caps.network_isolation("rlimits")
    # Landlock's TCP rules alone leave UDP open: B and C isolate only with seccomp.
    caps.landlock_abi = 7
    assert not caps.network_isolation("landlock")
    caps.seccomp = True
    assert caps.network_isolation("landlock") and caps.network_isolation("rlimits")
    bare = Capabilities(root=False, bwrap_error="not installed")
    assert choose_tier(bare) == "rlimits"
    with pytest.raises(ValueError, match="not installed"):
        choose_tier(bare, "bwrap")


def test_shared_uid_process_cap_sits_above_what_the_uid_runs():
    limits = policy.rlimits(memory=0, processes=64, file_size=0, open_files=0, rlimit_as=False,
                            count_processes=False, shared_tasks=100)
    assert limits["RLIMIT_NPROC"] == 164
    assert "supervise" in policy.direct_command(kernel_cmd=["k"], spec={}, supervise=True)[4]
    assert policy.direct_command(kernel_cmd=["k"], spec={})[4] == "outer,inner"


@pytest.mark.asyncio
async def test_forced_tier_is_validated_and_reported():
    from icpy_kernels.config import Settings
    from icpy_kernels.provisioning.bridge import SandboxPolicy

    with pytest.raises(ValueError):
        SandboxPolicy(Settings(token="x", sandbox_tier="chroot"))
    sandbox = SandboxPolicy(Settings(token="x", sandbox_tier="rlimits"))
    try:
        info = await sandbox.describe()
        assert info["tier"] == "rlimits" and info["tier_requested"] == "rlimits"
        # Tier C isolates the network exactly when the seccomp filter works here.
        assert info["network_isolation"] is info["seccomp"] and info["tier_error"] is None
        assert info["disk_quota_enforcement"]["enforced_by"] == ["watcher", "checked_after_execution"]
        assert sandbox.provisioner("s", SessionSandbox())["config"]["tier"] == "rlimits"
    finally:
        sandbox.close()
