"""The CPU limit's pure parts: ``config.limits.cpu``, its cap, and the CFS quota it becomes."""

from __future__ import annotations

import argparse

import pytest

from icpy_kernels.config import Settings, add_arguments, load_settings
from icpy_kernels.errors import ValidationError
from icpy_kernels.provisioning.bridge import SandboxPolicy
from icpy_kernels.provisioning.cgroups import CFS_PERIOD_US, cfs_quota_us
from icpy_kernels.provisioning.options import SessionSandbox, parse_session_sandbox


@pytest.fixture
def policy_for():
    made: list[SandboxPolicy] = []

    def make(**settings) -> SandboxPolicy:
        made.append(SandboxPolicy(Settings(token="x", **settings)))
        return made[-1]

    yield make
    for policy in made:
        policy.close()


def test_setting_defaults_to_one_core_and_reads_flag_and_env():
    assert Settings(token="x").cpu_limit == 1000
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert load_settings(parser.parse_args(["--cpu-limit", "250"]), env={}).cpu_limit == 250
    assert load_settings(None, env={"ICPY_CPU_LIMIT": "0"}).cpu_limit == 0


def test_session_may_ask_for_millicores():
    assert parse_session_sandbox({"limits": {"cpu": 500}}).limits == {"cpu": 500}
    for bad in (0, -1, 0.5, "500", True):
        with pytest.raises(ValidationError) as info:
            parse_session_sandbox({"limits": {"cpu": bad}})
        assert info.value.field == "config.limits.cpu"


def test_cpu_is_capped_like_memory(policy_for):
    sandbox = policy_for(cpu_limit=1000, memory_limit=1 << 30)
    asked = SessionSandbox(limits={"cpu": 4000, "memory": 1 << 40})
    assert sandbox.limits(asked)["cpu"] == 1000 and sandbox.limits(asked)["memory"] == 1 << 30
    assert sandbox.limits(SessionSandbox(limits={"cpu": 500}))["cpu"] == 500
    assert sandbox.limits()["cpu"] == 1000
    # The provisioner's config key is the limit's name.
    assert sandbox.provisioner("s", SessionSandbox(limits={"cpu": 500}))["config"]["cpu"] == 500


def test_no_server_cap_still_honours_a_session_limit(policy_for):
    sandbox = policy_for(cpu_limit=0, memory_limit=0)
    assert sandbox.limits()["cpu"] == 0 and sandbox.limits()["memory"] == 0
    asked = sandbox.limits(SessionSandbox(limits={"cpu": 500, "memory": 1 << 20}))
    assert asked["cpu"] == 500 and asked["memory"] == 1 << 20


def test_cfs_quota_is_millicores_of_the_period():
    assert CFS_PERIOD_US == 100_000
    assert cfs_quota_us(1000) == 100_000  # one core: the whole period
    assert cfs_quota_us(500) == 50_000
    assert cfs_quota_us(2500) == 250_000  # more than one core: several CPUs' worth per period
    assert cfs_quota_us(1) == 1_000  # the kernel's smallest quota (1 ms), not an EINVAL
