"""``icpy kernels list|install`` and ``icpy doctor``, run as a user would."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.paths import prefer_environment_over_user

from .clitools import clean_env, icpy


def test_kernels_list_shows_the_three_languages():
    proc = icpy("kernels", "list")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()}
    assert rows["python3"].startswith("python")
    assert rows["icpy-bash"].startswith("bash")
    assert rows["icpy-javascript"].startswith("javascript")


def test_kernels_install_writes_specs_with_this_interpreter(tmp_path):
    proc = icpy("kernels", "install", "--prefix", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    kernels = tmp_path / "share" / "jupyter" / "kernels"
    assert sorted(p.name for p in kernels.iterdir()) == ["icpy-bash", "icpy-javascript", "python3"]
    for name in ("icpy-bash", "icpy-javascript"):
        spec = json.loads((kernels / name / "kernel.json").read_text())
        assert spec["argv"][0] == sys.executable or spec["argv"][0].startswith(sys.prefix)
        assert "kernel_provisioner" not in spec.get("metadata", {})


@pytest.mark.asyncio
async def test_kernels_install_sandbox_makes_any_front_end_launch_sandboxed(tmp_path):
    proc = icpy("kernels", "install", "--sandbox", "--prefix", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    kernels = tmp_path / "share" / "jupyter" / "kernels"
    spec = json.loads((kernels / "icpy-bash" / "kernel.json").read_text())
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "icpy-sandbox"
    doctor = icpy("doctor", env=clean_env())
    if "tier:              A" not in doctor.stdout:
        pytest.skip("bubblewrap tier unavailable here: " + doctor.stdout)
    # A plain jupyter_client front end, knowing nothing of icpy's server, gets the sandbox.
    km = AsyncKernelManager(kernel_name="icpy-bash", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    await km.start_kernel()
    try:
        kc = km.client()
        kc.start_channels()
        await kc.wait_for_ready(timeout=60)
        out: list[dict] = []
        reply = await kc.execute_interactive("hostname; id -u", timeout=30, output_hook=out.append)
        assert reply["content"]["status"] == "ok"
        text = "".join(m["content"].get("text", "") for m in out if m["msg_type"] == "stream")
        host, uid = text.split()
        assert host == "icpy-sandbox" and host != socket.gethostname()
        assert int(uid) != 0
        kc.stop_channels()
    finally:
        await km.shutdown_kernel(now=True)


def test_doctor_reports_the_tier_and_each_limit():
    proc = icpy("doctor")
    assert proc.returncode == 0, proc.stderr
    for label in ("sandbox mode:", "tier:", "network:", "memory:", "processes:", "cpu:", "file size:",
                  "open files:", "disk quota:"):
        assert label in proc.stdout, (label, proc.stdout)


def _python3_spec(kernels: Path) -> Path:
    spec = kernels / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps(
        {"argv": ["python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
         "display_name": "a venv's own Python 3", "language": "python"}))
    return spec


def test_kernels_install_names_the_spec_that_shadows_it_and_fails(tmp_path):
    # As in a venv: its own python3 spec comes before the user's, so --user --sandbox would
    # leave Python unsandboxed in every other front end.
    shadow = _python3_spec(tmp_path / "ahead" / "kernels")
    env = clean_env(JUPYTER_PATH=str(tmp_path / "ahead"), JUPYTER_DATA_DIR=str(tmp_path / "user"))
    proc = icpy("kernels", "install", "--user", "--sandbox", env=env)
    assert proc.returncode == 1, proc.stderr
    assert (tmp_path / "user" / "kernels" / "python3" / "kernel.json").exists()
    line = next(x for x in proc.stderr.splitlines() if "warning: python3:" in x)
    assert str(shadow) in line and "NOT sandboxed" in line and "JUPYTER_PATH" in line
    venv_spec = Path(sys.prefix, "share", "jupyter", "kernels", "icpy-bash")
    if venv_spec.exists() and prefer_environment_over_user():  # the case: the venv's spec wins
        line = next(x for x in proc.stderr.splitlines() if "warning: icpy-bash:" in x)
        assert str(venv_spec) in line and "icpy kernels install --sys-prefix --sandbox" in line


def test_kernels_install_where_it_takes_effect_says_nothing_more(tmp_path):
    env = clean_env(JUPYTER_PATH=str(tmp_path / "share" / "jupyter"))
    proc = icpy("kernels", "install", "--sandbox", "--prefix", str(tmp_path), env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_help_names_every_command_without_rest_markup():
    proc = icpy("--help")
    assert proc.returncode == 0
    for command in ("serve", "exec", "run", "kernels", "doctor"):
        assert f"\n    {command} " in proc.stdout, (command, proc.stdout)
    assert "`" not in proc.stdout  # no reST or Markdown markup in terminal text


@pytest.mark.parametrize("args", [(), ("kernels",)])
def test_a_missing_subcommand_lists_the_choices(args):
    proc = icpy(*args)
    assert proc.returncode == 2
    assert "required" not in proc.stderr and "kernels_command" not in proc.stderr
    choices = ("list", "install") if args else ("serve", "exec", "run", "kernels", "doctor")
    for choice in choices:
        assert f"\n  {choice} " in proc.stderr, (choice, proc.stderr)


def test_doctor_help_says_what_it_does_and_lists_only_sandbox_options():
    proc = icpy("doctor", "--help")
    assert proc.returncode == 0
    assert "sandbox tier" in proc.stdout.split("options:")[0]
    assert "--memory-limit" in proc.stdout and "--sandbox-tier" in proc.stdout
    for server_only in ("--port", "--token", "--max-connections", "--db"):
        assert server_only not in proc.stdout


def test_run_help_has_its_own_exit_statuses():
    run = icpy("run", "--help").stdout.split("exit status:")[1]
    exec_ = icpy("exec", "--help").stdout.split("exit status:")[1]
    assert "a cell failed" in run and "the code raised an error" not in run
    assert "the code raised an error" in exec_ and "143" in exec_ and "143" in run
