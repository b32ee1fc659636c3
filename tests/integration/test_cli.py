"""``icpy exec`` (locally and with --url) and ``icpy serve``'s shutdown, driven as subprocesses."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from .clitools import ICPY, REPO, TOKEN, ServerProcess, clean_env, icpy, wait_gone


def pid_line(out: str) -> int:
    return int(next(line for line in out.splitlines() if line.startswith("pid="))[4:])


# -- local (embedded kernel manager) ---------------------------------------------------
def test_exec_streams_stdout_and_stderr_apart_and_stops_its_kernel():
    code = "import os, sys\nprint(f'pid={os.getpid()}')\nprint('to stderr', file=sys.stderr)\n6 * 7"
    proc = icpy("exec", code)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1:] == ["42"]  # stream output, then the result as text/plain
    assert "to stderr" in proc.stderr and "to stderr" not in proc.stdout
    assert "TCP without encryption" not in proc.stderr  # kernel noise stays out of the terminal
    assert not wait_gone({pid_line(proc.stdout)}, timeout=5), "the CLI left its kernel running"


def test_exec_error_exits_1_with_the_traceback_on_stderr():
    proc = icpy("exec", "print('before')\n1/0")
    assert proc.returncode == 1
    assert proc.stdout == "before\n"
    assert "ZeroDivisionError" in proc.stderr
    assert "\x1b[" not in proc.stderr  # no colour codes when stderr is not a terminal


def test_exec_timeout_exits_124():
    started = time.monotonic()
    proc = icpy("exec", "--timeout", "1", "import time\nprint('start', flush=True)\ntime.sleep(60)")
    assert proc.returncode == 124, proc.stderr
    assert proc.stdout == "start\n"
    assert "timed out" in proc.stderr
    assert time.monotonic() - started < 30


def test_exec_a_file_by_extension_and_stdin(tmp_path):
    script = tmp_path / "hello.sh"
    script.write_text('x=21\necho "bash says $((x * 2))"\necho oops >&2\n')
    proc = icpy("exec", str(script))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "bash says 42\n"
    assert "oops" in proc.stderr

    proc = icpy("exec", "-", stdin="import sys\nprint(sys.version_info[0])\n")
    assert (proc.returncode, proc.stdout) == (0, "3\n"), proc.stderr


def test_exec_passes_on_a_kernel_exit_status():
    proc = icpy("exec", "-l", "bash", "echo out; (exit 3)")
    assert proc.returncode == 3
    assert proc.stdout == "out\n"


def test_exec_exits_with_the_status_the_program_asked_for():
    proc = icpy("exec", "-l", "bash", "echo hi; exit 0")  # as under bash: a success
    assert (proc.returncode, proc.stdout) == (0, "hi\n"), proc.stderr
    assert "restarted" in proc.stderr and "ExitStatus" not in proc.stderr
    proc = icpy("exec", "print('a'); import sys; sys.exit(5)")  # as under python: 5, silently
    assert (proc.returncode, proc.stdout) == (5, "a\n"), proc.stderr
    assert "SystemExit" not in proc.stderr and "To exit" not in proc.stderr, proc.stderr


def test_exec_json_prints_every_event_as_one_line():
    code = "console.log('hi'); display.html('<b>x</b>'); 40 + 2"
    proc = icpy("exec", "--json", "-l", "js", code)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    types = [e["type"] for e in events if e["type"] != "keepalive"]
    assert types[0] == "execution_started" and types[-1] == "execution_result"
    updates = [e for e in events if e["type"] == "execution_update"]
    assert [u["seq"] for u in updates] == list(range(1, len(updates) + 1))
    kinds = [u["update"]["kind"] for u in updates]
    assert kinds == ["stream", "display", "result"]
    assert updates[1]["update"]["data"]["text/html"] == "<b>x</b>"
    result = events[-1]
    assert result["status"] == "completed" and result["language"] == "javascript"
    assert result["result"]["text/plain"] == "42"


def test_bad_input_is_one_line_on_stderr_and_exit_2(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    for args in (
        ["exec", str(tmp_path / "missing.py")],
        ["exec", "-l", "cobol", "DISPLAY 'HI'"],
        ["run", str(bad)],
        ["run", str(tmp_path / "missing.ipynb")],
        ["exec", "--url", "ws://127.0.0.1:9/ws", "1"],  # nothing listens on the discard port
    ):
        proc = icpy(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("icpy: error: ") and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stdout == ""


def test_ctrl_c_interrupts_the_code_then_the_kernel_is_stopped():
    proc = subprocess.Popen(
        [*ICPY, "exec", "import os, time\nprint(f'pid={os.getpid()}', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(), cwd=REPO)
    kernel = pid_line(proc.stdout.readline())
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "KeyboardInterrupt" in err and "interrupted" in err
    assert not wait_gone({kernel}, timeout=5)


# -- against a server (--url / ICPY_URL) ------------------------------------------------
@pytest.fixture(scope="module")
def served():
    server = ServerProcess()
    yield server
    code, left = server.stop(signal.SIGTERM)
    assert code == 0
    assert not left, f"kernels outlived the server: {left}"


def test_exec_with_url_keeps_a_named_session_between_commands(served):
    first = served.remote("exec", "--session", "cli-state", "x = 20\nprint('set')")
    assert (first.returncode, first.stdout) == (0, "set\n"), first.stderr
    second = served.remote("exec", "--session", "cli-state", "x * 2 + 2")
    assert (second.returncode, second.stdout) == (0, "42\n"), second.stderr
    failed = served.remote("exec", "-l", "bash", "echo err >&2; false")
    assert failed.returncode == 1 and failed.stderr.startswith("err\n")


def test_ctrl_c_with_url_interrupts_and_the_named_session_lives_on(served):
    proc = subprocess.Popen(
        [*ICPY, "exec", "--session", "cli-ctrl-c", "y = 5\nprint('start', flush=True)\nimport time\ntime.sleep(60)"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=clean_env(ICPY_URL=served.url, ICPY_TOKEN=TOKEN), cwd=REPO)
    assert proc.stdout.readline() == "start\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "KeyboardInterrupt" in err
    again = served.remote("exec", "--session", "cli-ctrl-c", "y + 1")
    assert (again.returncode, again.stdout) == (0, "6\n"), again.stderr


def test_exec_with_url_json_and_timeout(served):
    proc = served.remote("exec", "--json", "--timeout", "1", "import time\ntime.sleep(30)")
    assert proc.returncode == 124, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["type"] == "execution_result" and result["status"] == "timeout"


def test_exec_with_a_wrong_token_exits_2(served):
    proc = icpy("exec", "--url", served.url, "--token", "wrong", "1")
    assert proc.returncode == 2
    assert "token was refused" in proc.stderr


def test_local_ignores_icpy_url(served):
    proc = icpy("exec", "--local", "print('here')",
                env=clean_env(ICPY_URL="ws://127.0.0.1:9/ws", ICPY_TOKEN=TOKEN))
    assert (proc.returncode, proc.stdout) == (0, "here\n"), proc.stderr


# -- icpy serve's banner ------------------------------------------------------------------
def sessions_status(url: str, token: str) -> int:
    http = url.replace("ws://", "http://", 1).removesuffix("/ws") + "/api/sessions"
    request = urllib.request.Request(http, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def test_the_banner_prints_a_generated_token_but_never_a_chosen_one():
    chosen = "chosen-in-the-environment-0123456789"
    server = ServerProcess(env=clean_env(ICPY_TOKEN=chosen))
    try:
        assert chosen not in server.banner and "token=" not in server.banner, server.banner
        assert "ICPY_TOKEN" in server.banner  # says where the token comes from instead
        assert sessions_status(server.url, chosen) == 200
    finally:
        assert server.stop()[0] == 0
    server = ServerProcess(env=clean_env())
    try:
        token = server.banner.split("?token=", 1)[1].strip()
        assert sessions_status(server.url, token) == 200  # the URL printed is the one to use
    finally:
        assert server.stop()[0] == 0


def kernel_kind(pid: int) -> str | None:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if b"ipykernel_launcher" in cmdline:
        return "python"
    if b"icpy_kernels.kernels.bash" in cmdline:
        return "bash"
    return None


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stopping_the_server_shuts_down_every_kernel(sig):
    server = ServerProcess()
    try:
        # A named session outlives its connection: only the server's shutdown stops it.
        # One of them is busy when the signal arrives.
        py = server.remote("exec", "--session", "stay-py", "import os\nprint(f'pid={os.getpid()}')")
        assert py.returncode == 0, py.stderr
        sh = server.remote("exec", "-l", "bash", "--session", "stay-sh", "echo pid=$$")
        assert sh.returncode == 0, sh.stderr
        busy = subprocess.Popen(
            [*ICPY, "exec", "--session", "stay-py", "print('busy', flush=True)\nimport time\ntime.sleep(60)"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=clean_env(ICPY_URL=server.url, ICPY_TOKEN=TOKEN), cwd=REPO)
        assert busy.stdout.readline() == "busy\n"
        # The kernels' own pids may be namespaced (sandbox): find them among the server's
        # descendants by command line instead.
        kernels = {pid for pid in server.kernel_pids() if kernel_kind(pid)}
        assert {kernel_kind(pid) for pid in kernels} == {"python", "bash"}
    finally:
        code, left = server.stop(sig)
    assert code == 0
    assert not left and not wait_gone(kernels, timeout=5), "kernels outlived the server"
    busy.communicate(timeout=30)
    assert busy.returncode != 0  # its session was shut down under it
