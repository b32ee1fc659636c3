"""The two kernel environment allow-lists keep their contents, and both go through one matcher."""

from __future__ import annotations

import os
import sys

from icpy_kernels import kernelenv
from icpy_kernels.provisioning.policy import sandbox_env
from icpy_kernels.runtime.kernels import kernel_environment

# The lists as they were before they shared a module (issue 12): changing one is a decision.
LOCAL = {
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TZ", "TERM",
    "TMPDIR", "JUPYTER_PATH", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR",
    "VIRTUAL_ENV", "PYTHONPATH", "NODE_PATH", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
    "MALLOC_ARENA_MAX", "SYSTEMROOT",
}
SANDBOX = {
    "PATH", "LANG", "LANGUAGE", "LC_*", "TZ", "TERM", "JUPYTER_PATH", "JUPYTER_DATA_DIR",
    "VIRTUAL_ENV", "PYTHONPATH", "NODE_PATH", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
    "MALLOC_ARENA_MAX", "JPY_SESSION_NAME",
}


def host() -> dict[str, str]:
    names = (LOCAL | SANDBOX) - {"LC_*"}
    return {**{n: f"v-{n}" for n in names}, "LC_ALL": "C", "ICPY_TOKEN": "secret",
            "AWS_SECRET_ACCESS_KEY": "x", "LC": "no", "PATHEXT": "no"}


def test_the_lists_are_unchanged():
    assert set(kernelenv.LOCAL) == LOCAL and len(kernelenv.LOCAL) == len(LOCAL)
    assert set(kernelenv.SANDBOX) == SANDBOX and len(kernelenv.SANDBOX) == len(SANDBOX)


def test_matcher_exact_names_and_prefixes():
    assert kernelenv.allowed("LC_ALL", ("LC_*",)) and kernelenv.allowed("LC_", ("LC_*",))
    assert not kernelenv.allowed("LC", ("LC_*",)) and not kernelenv.allowed("PATHEXT", ("PATH",))
    assert kernelenv.select({"B": "1", "A": "2", "C": "3"}, ("A", "B")) == {"B": "1", "A": "2"}


def test_unsandboxed_environment_passes_exactly_the_local_list():
    env = kernel_environment(host())
    expected = {n for n in LOCAL if n != "LC_*"} | {"LC_ALL"}
    assert set(env) == expected
    assert env["PATH"] == os.pathsep.join([os.path.dirname(sys.executable), "v-PATH"])
    assert env["HOME"] == "v-HOME" and "JPY_SESSION_NAME" not in env
    assert kernel_environment(host(), extra_allow=("AWS_*",))["AWS_SECRET_ACCESS_KEY"] == "x"


def test_sandbox_environment_passes_exactly_the_sandbox_list():
    env = sandbox_env(host(), workspace="/w", tmpdir="/t")
    set_by_sandbox = {"HOME", "PWD", "TMPDIR", "USER", "LOGNAME"}
    assert set(env) == ({n for n in SANDBOX if n != "LC_*"} | {"LC_ALL"} | set_by_sandbox)
    assert env["HOME"] == "/w" and env["TMPDIR"] == "/t" and env["PATH"] == "v-PATH"
    # An extra pattern can widen the sandbox's list but never reaches the server's settings.
    widened = sandbox_env(host(), workspace="/w", extra_allow=("AWS_*", "ICPY_*"))
    assert widened["AWS_SECRET_ACCESS_KEY"] == "x" and "ICPY_TOKEN" not in widened
