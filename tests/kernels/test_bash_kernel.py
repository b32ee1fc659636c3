"""The icpy-bash kernel, driven over the Jupyter protocol with jupyter_client."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import jupyter_kernel_test
import pytest
import pytest_asyncio

from .driver import TIMEOUT, run, start_kernel, stop_kernel

amark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def kernel():
    km, kc = await start_kernel("icpy-bash")
    yield km, kc
    await stop_kernel(km, kc)


# -- state, streams, exit status ------------------------------------------------------------


@amark
async def test_state_persists(kernel, tmp_path: Path) -> None:
    _, kc = kernel
    await run(kc, f"x=41; greet() {{ echo \"hello $1\"; }}; alias ll='echo LL'\ncd {tmp_path}")
    await run(kc, "export ICPY_T=exported; declare -A map=([k]=v)")
    r = await run(kc, "echo $((x+1)); greet you; ll z; pwd; bash -c 'echo $ICPY_T'; echo ${map[k]}")
    assert r.content["status"] == "ok"
    assert r.text() == f"42\nhello you\nLL z\n{tmp_path}\nexported\nv\n"


@amark
async def test_alias_defined_earlier_in_same_cell(kernel) -> None:
    _, kc = kernel
    r = await run(kc, "alias hey='echo HEY'\nhey there")
    assert r.text() == "HEY there\n"


@amark
async def test_stdout_and_stderr_are_separate(kernel) -> None:
    _, kc = kernel
    r = await run(kc, "echo out; echo err >&2; echo out2")
    assert r.text("stdout") == "out\nout2\n"
    assert r.text("stderr") == "err\n"
    assert r.content["status"] == "ok" and r.content["exit_code"] == 0


@amark
async def test_output_streams_in_real_time(kernel) -> None:
    _, kc = kernel
    r = await run(kc, "echo a; sleep 0.5; echo b")
    first_at, first = r.streams("stdout")[0]
    assert first.startswith("a")
    assert r.reply_at - first_at >= 0.4
    assert r.text() == "a\nb\n"


@amark
async def test_partial_lines_and_invalid_utf8(kernel) -> None:
    _, kc = kernel
    r = await run(kc, "printf 'no newline'")
    assert r.text() == "no newline"
    # A euro sign split across two writes, then bytes that are not UTF-8 at all.
    r = await run(kc, r"printf '\xe2'; sleep 0.1; printf '\x82\xac|\xff\xfe|'; printf 'end'")
    assert r.text() == "€|\ufffd\ufffd|end"
    r = await run(kc, "echo still alive")
    assert r.text() == "still alive\n"


@amark
async def test_stdout_and_stderr_keep_their_order_when_written_apart(kernel) -> None:
    """Two pipes carry no common order: lines the kernel reads apart (here 5 ms, less than
    its 10 ms batching) come back in the order written; lines written in the same instant
    may come back grouped by stream (README, bash row)."""
    _, kc = kernel
    code = "echo e1 >&2; sleep 0.005; echo o1; sleep 0.005; echo e2 >&2; sleep 0.005; echo o2"
    for i in range(20):
        r = await run(kc, code)
        order = [(m["content"]["name"][3], m["content"]["text"]) for _, m in r.msgs
                 if m["msg_type"] == "stream"]
        assert "".join(text for _, text in order) == "e1\no1\ne2\no2\n", (i, order)


@amark
async def test_bulk_output_is_whole_ordered_and_fast(kernel) -> None:
    _, kc = kernel
    start = time.monotonic()
    r = await run(kc, "seq 1 2000000", timeout=60)
    elapsed = time.monotonic() - start
    text = r.text()
    assert text == "".join(f"{i}\n" for i in range(1, 2000001))
    # ~14.9 MB; bash_kernel manages ~0.6 MB/s, we want far better than that.
    assert len(text) / elapsed > 5e6, f"{len(text) / elapsed / 1e6:.1f} MB/s"


@amark
async def test_exit_status(kernel) -> None:
    _, kc = kernel
    r = await run(kc, "true")
    assert r.content["status"] == "ok" and r.content["exit_code"] == 0
    r = await run(kc, "echo before; (exit 3)")
    assert r.content["status"] == "error"
    assert r.content["exit_code"] == 3
    assert r.content["ename"] == "ExitStatus" and r.content["evalue"] == "exit status 3"
    assert [e["ename"] for e in r.errors] == ["ExitStatus"]
    assert r.text() == "before\n"
    # `$?` carries over into the next cell, as in a terminal.
    r = await run(kc, "echo $?")
    assert r.text() == "3\n"


@amark
async def test_exit_restarts_the_shell(kernel) -> None:
    _, kc = kernel
    await run(kc, "doomed=1")
    r = await run(kc, "exit 3")
    assert r.content["status"] == "error"
    assert r.content["ename"] == "ExitStatus"
    assert r.content["restarted"] is True and r.content["exit_code"] == 3
    assert "restarted" in r.content["evalue"]
    r = await run(kc, 'echo "doomed=${doomed:-unset}"')
    assert r.content["status"] == "ok"
    assert r.text() == "doomed=unset\n"


@amark
async def test_exit_0_succeeds_with_a_notice_that_the_shell_restarted(kernel) -> None:
    _, kc = kernel
    await run(kc, "doomed=1")
    r = await run(kc, "echo hi; exit 0")
    assert r.content["status"] == "ok" and r.content["exit_code"] == 0, r.content
    assert r.content["restarted"] is True and not r.errors
    assert r.text() == "hi\n" and "[icpy] bash exited with status 0" in r.text("stderr")
    r = await run(kc, 'echo "doomed=${doomed:-unset}"')
    assert r.text() == "doomed=unset\n"


# -- interrupts -----------------------------------------------------------------------------


async def _interrupt_after(delay: float, do_interrupt: Any) -> float:
    await asyncio.sleep(delay)
    await do_interrupt()
    return time.monotonic()


@amark
@pytest.mark.parametrize("code", ["sleep 100", "while true; do :; done"])
@pytest.mark.parametrize("mode", ["message", "signal"])
async def test_interrupt(kernel, code: str, mode: str) -> None:
    km, kc = kernel
    await run(kc, "x=1")

    async def interrupt() -> None:
        if mode == "message":
            await km.interrupt_kernel()
        else:
            # What interrupt_mode "signal" does: SIGINT to the kernel's process group.
            await km.signal_kernel(signal.SIGINT)

    r, sent_at = await asyncio.gather(run(kc, code), _interrupt_after(0.3, interrupt))
    assert r.reply_at - sent_at < 1.0
    assert r.content["status"] == "error"
    assert r.content["ename"] == "KeyboardInterrupt"
    r = await run(kc, "echo $x")
    assert r.text() == "1\n"


# -- stdin ----------------------------------------------------------------------------------


@amark
async def test_read_asks_the_frontend(kernel) -> None:
    _, kc = kernel
    r = await run(kc, 'read name; echo "hi $name"', allow_stdin=True, answers=("world",))
    assert r.input_requests == [{"prompt": "", "password": False}]
    assert r.text() == "hi world\n"
    r = await run(
        kc,
        'read -s -p "Password: " pw; read -r a b; echo "$pw/$a/$b"',
        allow_stdin=True,
        answers=("s3cret", r"one two\three"),
    )
    assert r.input_requests[0] == {"prompt": "Password: ", "password": True}
    assert r.input_requests[1]["password"] is False
    assert r.text() == r"s3cret/one/two\three" + "\n"


@amark
async def test_interrupt_while_reading(kernel) -> None:
    km, kc = kernel
    await run(kc, "y=2")
    # Nobody answers the input_request; the interrupt must end the cell anyway.
    r, sent_at = await asyncio.gather(
        run(kc, "read name; echo never", allow_stdin=True),
        _interrupt_after(0.3, km.interrupt_kernel),
    )
    assert r.reply_at - sent_at < 1.0
    assert r.content["ename"] == "KeyboardInterrupt"
    assert r.text() == ""
    r = await run(kc, "echo $y")
    assert r.text() == "2\n"


@amark
async def test_read_from_files_and_pipes_is_untouched(kernel) -> None:
    _, kc = kernel
    r = await run(
        kc, "echo piped | { read v; echo got $v; }; read w <<< here; echo $w", allow_stdin=True
    )
    assert r.input_requests == []
    assert r.text() == "got piped\nhere\n"


@amark
async def test_without_stdin_reads_see_eof(kernel) -> None:
    _, kc = kernel
    start = time.monotonic()
    r = await run(kc, "read x; echo rc=$?; cat; echo cat=$?", timeout=5)
    assert time.monotonic() - start < 2
    assert r.text() == "rc=1\ncat=0\n"


# -- completion, inspection, is_complete ----------------------------------------------------


async def complete(kc: Any, code: str, cursor_pos: int | None = None) -> dict[str, Any]:
    reply = await kc.complete(code, cursor_pos, reply=True, timeout=TIMEOUT)
    return reply["content"]


@amark
async def test_complete_commands_variables_paths(kernel, tmp_path: Path) -> None:
    _, kc = kernel
    (tmp_path / "file_one.txt").write_text("")
    (tmp_path / "file two.txt").write_text("")
    (tmp_path / "folder").mkdir()
    await run(kc, "icpy_myvar=1; (exit 7)")

    c = await complete(kc, "ech")
    assert "echo" in c["matches"] and (c["cursor_start"], c["cursor_end"]) == (0, 3)
    c = await complete(kc, "echo $HO")
    assert "$HOME" in c["matches"] and c["cursor_start"] == 5
    c = await complete(kc, "echo ${icpy_my")
    assert c["matches"] == ["${icpy_myvar}"]
    c = await complete(kc, f"ls {tmp_path}/f")
    assert c["cursor_start"] == 3
    assert set(c["matches"]) == {
        f"{tmp_path}/file_one.txt",
        f"{tmp_path}/file\\ two.txt",
        f"{tmp_path}/folder/",
    }
    c = await complete(kc, "echo hi; __icpy_")
    assert c["matches"] == []
    # Completion ran in the live shell without disturbing the user's `$?`.
    r = await run(kc, "echo $?")
    assert r.text() == "7\n"


@amark
async def test_inspect(kernel) -> None:
    _, kc = kernel
    reply = await kc.inspect("echo hi", 2, reply=True, timeout=TIMEOUT)
    assert reply["content"]["found"] is True
    text = reply["content"]["data"]["text/plain"]
    assert "echo is a shell builtin" in text and "Write arguments" in text
    reply = await kc.inspect("no_such_cmd_xyz", 3, reply=True, timeout=TIMEOUT)
    assert reply["content"]["found"] is False


@amark
async def test_is_complete(kernel) -> None:
    _, kc = kernel
    cases = {
        "echo hi": "complete",
        "for i in 1 2; do": "incomplete",
        "echo 'open": "incomplete",
        "echo hi \\": "incomplete",
        "cat <<EOF\nx": "incomplete",
        "if true; then echo; fi": "complete",
        "fi": "invalid",
        "echo )": "invalid",
    }
    for code, status in cases.items():
        reply = await kc.is_complete(code, reply=True, timeout=TIMEOUT)
        assert reply["content"]["status"] == status, code


# -- shutdown -------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return ") Z " not in stat


@amark
async def test_shutdown_kills_bash_and_background_jobs() -> None:
    km, kc = await start_kernel("icpy-bash")
    try:
        r = await run(kc, "sleep 1000 & echo $! $$")
        job, bash = map(int, r.text().split())
        assert _alive(job) and _alive(bash)
    finally:
        await stop_kernel(km, kc)
    for _ in range(100):
        if not (_alive(job) or _alive(bash)):
            break
        await asyncio.sleep(0.05)
    assert not _alive(job) and not _alive(bash)
    if _alive(job):
        os.kill(job, signal.SIGKILL)


# -- conformance ----------------------------------------------------------------------------


class BashKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = "icpy-bash"
    language_name = "bash"
    file_extension = ".sh"
    code_hello_world = "echo 'hello, world'"
    code_stderr = "echo oops >&2"
    code_generate_error = "false"
    completion_samples = [
        {"text": "ech", "matches": {"echo"}},
        {"text": "echo $HOM", "matches": {"$HOME"}},
    ]
    complete_code_samples = ["echo hi", "x=1; echo $x", "f() { echo; }"]
    incomplete_code_samples = ["for i in 1 2; do", "echo 'abc", "echo \\", "f() {"]
    invalid_code_samples = ["fi", "done", "echo )"]
    code_inspect_sample = "cd"
