"""The icpy-javascript (Node.js) kernel, driven over the Jupyter protocol with jupyter_client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import jupyter_kernel_test
import pytest
import pytest_asyncio
from jupyter_client import AsyncKernelManager

from .driver import TIMEOUT, Result, run, start_kernel, stop_kernel

amark = pytest.mark.asyncio(loop_scope="module")
NODE_VERSION = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kernel's cwd: an installed package and local modules to require/import."""
    root = tmp_path_factory.mktemp("node-cwd")
    pkg = root / "node_modules" / "icpy-fake-pkg"
    pkg.mkdir(parents=True)
    (pkg / "package.json").write_text(json.dumps({"name": "icpy-fake-pkg", "main": "index.js"}))
    (pkg / "index.js").write_text("module.exports = { answer: 42 };\n")
    (root / "local.js").write_text("exports.hello = (n) => `hello ${n}`;\n")
    (root / "local.mjs").write_text("export const twice = (n) => 2 * n;\n")
    return root


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def kernel(workdir: Path):
    km, kc = await start_kernel("icpy-javascript", workdir)
    yield km, kc
    await stop_kernel(km, kc)


async def shell_request(kc: Any, method: str, *args: Any) -> dict[str, Any]:
    mid = getattr(kc, method)(*args)
    while True:
        msg = await kc.get_shell_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") == mid:
            return msg["content"]


# -- kernel_info, REPL semantics, modules -----------------------------------------------------


@amark
async def test_kernel_info(kernel) -> None:
    _, kc = kernel
    info = await shell_request(kc, "kernel_info")
    assert info["implementation"] == "icpy-javascript"
    lang = info["language_info"]
    assert lang["name"] == "javascript" and lang["file_extension"] == ".js"
    assert lang["mimetype"] == "application/javascript"
    assert "v" + lang["version"] == NODE_VERSION


@amark
async def test_declarations_persist_and_can_be_redeclared(kernel) -> None:
    _, kc = kernel
    cell = (
        "let a = 1; const b = 2; var c = 3; function f() { return 4 } class K { g() { return 5 } }"
    )
    assert (await run(kc, cell)).content["status"] == "ok"
    r = await run(kc, "[a, b, c, f(), new K().g()]")
    assert r.result == "[ 1, 2, 3, 4, 5 ]"
    # Re-running a cell that declares let/const must not fail with "already declared".
    r = await run(kc, cell.replace("= 1", "= 10"))
    assert r.content["status"] == "ok", r.content
    assert (await run(kc, "a + b")).result == "12"


@amark
async def test_top_level_await_require_and_import(kernel) -> None:
    _, kc = kernel
    code = """
const os = require('os');
const fake = require('icpy-fake-pkg');
const local = require('./local.js');
const { twice } = await import('./local.mjs');
const path = await import('node:path');
const pkg = await import('icpy-fake-pkg');
const s = "import('not-a-call')";
await new Promise((r) => setTimeout(r, 10));
[typeof os.cpus, fake.answer, local.hello('js'), twice(21), path.join('a', 'b'), pkg.default.answer, s]
"""
    r = await run(kc, code)
    assert r.content["status"] == "ok", r.content
    assert r.result == "[ 'function', 42, 'hello js', 42, 'a/b', 42, \"import('not-a-call')\" ]"
    # Static import syntax is accepted too (rewritten to dynamic imports), and re-runnable.
    code = "import fakeDefault from 'icpy-fake-pkg'\nimport { twice as t2 } from './local.mjs'\nimport * as ns from 'node:path'\n[fakeDefault.answer, t2(2), ns.sep]"
    for _ in range(2):
        r = await run(kc, code)
        assert r.result == "[ 42, 4, '/' ]", r.content


# -- results, streams ----------------------------------------------------------------------


@amark
async def test_execute_result_and_execution_count(kernel) -> None:
    _, kc = kernel
    first = await run(kc, "({ n: 1, s: 'x', arr: [1, 2] })")
    assert first.result == "{ n: 1, s: 'x', arr: [ 1, 2 ] }"
    assert "\x1b[" not in first.result
    assert first.of_type("execute_result")[0]["execution_count"] == first.content["execution_count"]
    second = await run(kc, "undefined")
    assert second.of_type("execute_result") == []
    assert second.content["execution_count"] == first.content["execution_count"] + 1
    assert (await run(kc, "let unused = 1")).of_type("execute_result") == []


@amark
async def test_stdout_and_stderr(kernel) -> None:
    _, kc = kernel
    r = await run(
        kc,
        "console.log('log'); console.info('info'); console.debug('debug');"
        "console.error('error'); console.warn('warn');"
        "process.stdout.write('raw-out\\n'); process.stderr.write('raw-err\\n');"
        "require('child_process').execSync('echo child', { stdio: 'inherit' });",
    )
    assert r.text("stdout").startswith("log\ninfo\ndebug\nraw-out\n")
    assert "child\n" in r.text("stdout")
    assert r.text("stderr") == "error\nwarn\nraw-err\n"


@amark
async def test_output_is_real_time_and_includes_async_callbacks(kernel) -> None:
    _, kc = kernel
    r = await run(
        kc,
        "console.log(1); setTimeout(() => console.log('timer'), 100);"
        "Promise.resolve().then(() => console.log('micro'));"
        "await new Promise((r) => setTimeout(r, 500)); console.log(2)",
    )
    chunks = r.streams("stdout")
    assert "".join(t for _, t in chunks) == "1\nmicro\ntimer\n2\n"
    assert r.reply_at - chunks[0][0] > 0.4, "the first line should arrive well before the reply"


@amark
async def test_two_million_lines_arrive_whole_and_fast(kernel) -> None:
    _, kc = kernel
    t0 = time.monotonic()
    r = await run(kc, "for (let i = 0; i < 2000000; i++) console.log(i)", timeout=60)
    elapsed = time.monotonic() - t0
    text = r.text()
    assert text == "".join(f"{i}\n" for i in range(2_000_000))
    rate = len(text) / 1e6 / elapsed
    print(f"2M lines: {len(text) / 1e6:.1f} MB in {elapsed:.2f} s = {rate:.1f} MB/s")
    assert rate > 2.0


# -- errors --------------------------------------------------------------------------------


@amark
async def test_errors(kernel) -> None:
    _, kc = kernel
    r = await run(kc, "function boom() { throw new TypeError('bad thing') }\nboom()")
    assert r.content["status"] == "error"
    assert (r.content["ename"], r.content["evalue"]) == ("TypeError", "bad thing")
    (err,) = r.of_type("error")
    tb = "\n".join(err["traceback"])
    assert "at boom (cell[" in tb and "driver.js" not in tb and "node:inspector" not in tb
    r = await run(kc, "undefinedThing + 1")
    assert r.content["ename"] == "ReferenceError"
    r = await run(kc, "let broken = (1 +;")
    assert r.content["ename"] == "SyntaxError"
    r = await run(kc, "await Promise.reject(new RangeError('async bad'))")
    assert (r.content["ename"], r.content["evalue"]) == ("RangeError", "async bad")


@amark
async def test_async_errors_do_not_kill_the_kernel(kernel) -> None:
    _, kc = kernel
    r = await run(
        kc,
        "setTimeout(() => { throw new Error('from timer') }, 10);"
        "Promise.reject(new Error('nobody catches'));"
        "await new Promise((r) => setTimeout(r, 100)); 'still here'",
    )
    assert r.content["status"] == "ok" and r.result == "'still here'"
    assert "Error: from timer" in r.text("stderr") and "nobody catches" in r.text("stderr")
    assert (await run(kc, "1 + 1")).result == "2"


@amark
async def test_process_exit_restarts_node(workdir: Path) -> None:
    km, kc = await start_kernel("icpy-javascript", workdir)
    try:
        r = await run(kc, "process.exit(3)")
        assert r.content["ename"] == "NodeExited"
        r = await run(kc, "40 + 2")
        assert r.result == "42" and "state is lost" in r.text("stderr")
    finally:
        await stop_kernel(km, kc)


# -- interrupts ----------------------------------------------------------------------------


async def interrupt_after(
    km: AsyncKernelManager, kc: Any, code: str, how: str
) -> tuple[Result, float]:
    task = asyncio.ensure_future(run(kc, code))
    await asyncio.sleep(0.3)
    t0 = time.monotonic()
    if how == "message":
        await km.interrupt_kernel()
    else:
        await km.signal_kernel(signal.SIGINT)
    result = await task
    return result, result.reply_at - t0


@amark
@pytest.mark.parametrize("how", ["message", "signal"])
async def test_interrupt_sync_and_async_code_keeps_state(kernel, how: str) -> None:
    km, kc = kernel
    await run(kc, "let keep = 42")
    for code in [
        "while (true) {}",
        "await new Promise(() => {})",
        "setTimeout(() => { for (;;); }, 50); await new Promise(() => {})",
    ]:
        r, took = await interrupt_after(km, kc, code, how)
        assert r.content["status"] == "error" and r.content["ename"] == "Interrupted", code
        assert took < 1.0, (code, took)
        assert (await run(kc, "keep")).result == "42"
    r = await run(kc, "await new Promise((r) => setTimeout(() => r(keep + 1), 20))")
    assert r.result == "43"


# -- rich output, stdin ----------------------------------------------------------------------


@amark
async def test_display(kernel) -> None:
    _, kc = kernel
    r = await run(
        kc,
        "display.html('<b>hi</b>'); display.svg('<svg></svg>');"
        "display.png(Buffer.from([137, 80, 78, 71])); display.json({ a: [1] });"
        "display.markdown('# T'); display({ x: 1 }, { 'text/html': '<i>x</i>' }); display([1, 2])",
    )
    shown = r.of_type("display_data")
    assert [sorted(d["data"]) for d in shown] == [
        ["text/html", "text/plain"],
        ["image/svg+xml", "text/plain"],
        ["image/png", "text/plain"],
        ["application/json", "text/plain"],
        ["text/markdown", "text/plain"],
        ["text/html", "text/plain"],
        ["text/plain"],
    ]
    assert shown[2]["data"]["image/png"] == "iVBORw=="
    assert shown[3]["data"]["application/json"] == {"a": [1]}
    assert shown[5]["data"]["text/plain"] == "{ x: 1 }"


@amark
async def test_display_ids_update_in_place(kernel) -> None:
    _, kc = kernel
    r = await run(
        kc,
        "const h = display.html('<b>0</b>', { display_id: 'progress' });"
        "h.update(undefined, { 'text/html': '<b>1</b>' });"
        "display.update('progress', 2);"
        "const fresh = display({ y: 1 }, undefined, { display_id: true });"
        "fresh.update('done'); [h.display_id, typeof fresh.display_id, display.text('plain')]",
    )
    shown = r.of_type("display_data")
    updates = r.of_type("update_display_data")
    assert [d["transient"] for d in shown] == [{"display_id": "progress"},
                                              {"display_id": shown[1]["transient"]["display_id"]}, {}]
    assert len(shown[1]["transient"]["display_id"]) == 36  # a uuid
    assert [u["transient"]["display_id"] for u in updates] == ["progress", "progress",
                                                              shown[1]["transient"]["display_id"]]
    assert [u["data"]["text/plain"] for u in updates] == ["<text/html>", "2", "'done'"]
    assert updates[0]["data"]["text/html"] == "<b>1</b>"
    assert r.result == "[ 'progress', 'string', undefined ]"
    bad = await run(kc, "display.html('x', { update: true })")
    assert bad.errors[0]["ename"] == "TypeError" and "display_id" in bad.errors[0]["evalue"]


@amark
async def test_input_round_trip(kernel) -> None:
    _, kc = kernel
    r = await run(
        kc,
        "const who = await input('name? '); `hi ${who}`",
        allow_stdin=True,
        answers=("ada",),
    )
    assert r.input_requests == [{"prompt": "name? ", "password": False}]
    assert r.result == "'hi ada'"


@amark
async def test_input_without_stdin_fails_fast(kernel) -> None:
    _, kc = kernel
    t0 = time.monotonic()
    r = await run(kc, "await input('x')")
    assert r.content["status"] == "error" and "allow_stdin" in r.content["evalue"]
    assert time.monotonic() - t0 < 2


# -- completion, is_complete, inspect ------------------------------------------------------


@amark
async def test_completion(kernel) -> None:
    _, kc = kernel
    await run(kc, "let myVariable = { alpha: 1, beta: 2 }; const myConst = 3")
    reply = await shell_request(kc, "complete", "x = Math.fl")
    assert "Math.floor" in reply["matches"]
    assert (reply["cursor_start"], reply["cursor_end"]) == (4, 11)
    reply = await shell_request(kc, "complete", "myV")
    assert reply["matches"] == ["myVariable"] and reply["cursor_start"] == 0
    reply = await shell_request(kc, "complete", "myVariable.al")
    assert reply["matches"] == ["myVariable.alpha"]
    reply = await shell_request(kc, "complete", "myCo")
    assert "myConst" in reply["matches"]
    # No side effects: a getter is not run to complete through it.
    await run(kc, "globalThis.hits = 0; const trap = { get g() { hits++; return {} } }")
    await shell_request(kc, "complete", "trap.g.x")
    assert (await run(kc, "hits")).result == "0"


@amark
async def test_is_complete(kernel) -> None:
    _, kc = kernel
    cases = {
        "1 + 1": "complete",
        "await 1": "complete",
        "let x = 1;\nx": "complete",
        "function f() {": "incomplete",
        "foo(1,": "incomplete",
        "`abc ${": "incomplete",
        "[1, 2": "incomplete",
        "1 +* 2": "invalid",
        "}": "invalid",
    }
    for code, status in cases.items():
        reply = await shell_request(kc, "is_complete", code)
        assert reply["status"] == status, code


@amark
async def test_inspect(kernel) -> None:
    _, kc = kernel
    await run(kc, "function add(a, b) { return a + b }\nconst cfg = { depth: 3 }")
    reply = await shell_request(kc, "inspect", "add(1, 2)", 2)
    assert reply["found"] and "function add(a, b)" in reply["data"]["text/plain"]
    reply = await shell_request(kc, "inspect", "cfg.depth", 6)
    assert reply["found"] and "number" in reply["data"]["text/plain"]
    reply = await shell_request(kc, "inspect", "nothingHere", 3)
    assert not reply["found"]


# -- lifecycle -----------------------------------------------------------------------------


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


async def wait_gone(pid: int, seconds: float = 5) -> bool:
    for _ in range(int(seconds / 0.05)):
        if not alive(pid):
            return True
        await asyncio.sleep(0.05)
    return not alive(pid)


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["shutdown", "sigkill"])
async def test_node_dies_with_the_kernel(how: str) -> None:
    km, kc = await start_kernel("icpy-javascript")
    node_pid = int((await run(kc, "process.pid")).result)
    assert alive(node_pid)
    if how == "shutdown":
        await stop_kernel(km, kc)
    else:
        # Leave node busy in a sync loop: it must still notice its parent is gone.
        kc.execute("while (true) {}")
        await asyncio.sleep(0.2)
        os.kill(km.provisioner.pid, signal.SIGKILL)
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
    assert await wait_gone(node_pid), "node outlived the kernel"


# -- jupyter_kernel_test conformance ---------------------------------------------------------


class NodeKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = "icpy-javascript"
    language_name = "javascript"
    file_extension = ".js"
    code_hello_world = "console.log('hello, world')"
    code_stderr = "console.error('oops')"
    code_generate_error = "throw new Error('expected')"
    code_execute_result = [
        {"code": "6 * 7", "result": "42"},
        {"code": "'a' + 'b'", "result": "'ab'"},
        {"code": "[1, 2].map((x) => x * 2)", "result": "[ 2, 4 ]"},
    ]
    code_display_data = [
        {"code": "display.html('<b>x</b>')", "mime": "text/html"},
        {"code": "display.svg('<svg></svg>')", "mime": "image/svg+xml"},
        {"code": "display.markdown('*x*')", "mime": "text/markdown"},
        {"code": "display.json({ a: 1 })", "mime": "application/json"},
        {"code": "display.png(Buffer.from('x'))", "mime": "image/png"},
    ]
    code_clear_output = "display.clear()"
    completion_samples = [
        {"text": "Math.fl", "matches": {"Math.floor"}},
        {"text": "JSON.str", "matches": {"JSON.stringify"}},
    ]
    complete_code_samples = ["1", "console.log('x')", "await Promise.resolve(1)", "class A {}"]
    incomplete_code_samples = ["function f() {", "[1, 2,", "`x ${", "if (true) {"]
    invalid_code_samples = ["1 +* 2", "let = ;", ")"]
    code_inspect_sample = "Math.max"


@amark
async def test_unhandled_rejections_belong_to_the_cell_that_made_the_promise(kernel) -> None:
    """The report comes with the cell that rejected, before its idle, never with the next
    cell (as nbclient once saw: in a following `while(true){}` cell, or not at all)."""
    _, kc = kernel
    shapes = (
        "Promise.reject(new Error('lost-{i}')); {i}",
        "(async () => {{ await null; throw new Error('lost-{i}') }})(); {i}",
        "Promise.resolve().then(() => {{ throw new Error('lost-{i}') }}); {i}",
        "new Promise((_, no) => setImmediate(() => no(new Error('lost-{i}')))); {i}",
    )
    for i in range(20):
        a = await run(kc, shapes[i % len(shapes)].format(i=i))
        assert a.content["status"] == "ok" and a.result == str(i)
        assert f"Unhandled promise rejection: Error: lost-{i}" in a.text("stderr"), i
        b = await run(kc, "let t0 = Date.now(); while (Date.now() - t0 < 5) {} 'next'")
        assert b.result == "'next'" and "lost-" not in b.text("stderr"), (i, b.text("stderr"))


@amark
async def test_a_later_rejection_goes_to_its_cell_not_the_running_one(kernel) -> None:
    _, kc = kernel
    a = await run(kc, "setTimeout(() => Promise.reject(new Error('later')), 20); 'armed'")
    mid = kc.execute("await new Promise((r) => setTimeout(r, 200)); 'waited'")
    late = []
    while True:
        msg = await kc.get_iopub_msg(timeout=TIMEOUT)
        parent = msg["parent_header"].get("msg_id")
        if msg["msg_type"] == "stream" and "Error: later" in msg["content"]["text"]:
            late.append(parent)
        if parent == mid and msg["content"].get("execution_state") == "idle":
            break
    assert late == [a.reply["parent_header"]["msg_id"]]
