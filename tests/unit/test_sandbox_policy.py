"""The sandbox's pure parts: session options, environment, rlimits, mounts, workspaces, tiers."""

from __future__ import annotations

import pytest

from icpy_kernels.errors import ValidationError
from icpy_kernels.provisioning import policy
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


def test_mounts_hide_tmp_and_bind_workspace():
    args = policy.mounts(workspace="/tmp/ws/a", private_dir="/tmp/rt/k", needed=["/tmp/venv"],
                         other_uid=False, network=False, tmp_size=0)
    assert args[0] == "--unshare-net" and args[1:4] == ["--ro-bind", "/", "/"]
    joined = " ".join(args)
    assert "--tmpfs /tmp" in joined and "--ro-bind /tmp/venv /tmp/venv" in joined
    assert "--perms 0755 --dir /tmp/ws" in joined and "--bind /tmp/ws/a /tmp/ws/a" in joined
    assert args[-2:] == ["--chdir", "/tmp/ws/a"]
    assert "--unshare-net" not in policy.mounts(workspace="/w", private_dir="/p", needed=[],
                                                other_uid=False, network=True, tmp_size=0)


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
