"""(e) Concurrent load: C clients, each in its own named session, run E mixed executions back to back.

Each step increments a counter in the session (``n``) and the result is checked exactly, so a
lost or duplicated execution shows as a mismatch:
  - ``execute``: ``n = n + 1; n`` -> output ``[k]``;
  - ``streaming``: ``execute_streaming`` of ``n = n + 1`` plus LINES printed lines ``k:i``; every
    line must arrive, in order, with ``seq`` 1, 2, 3... and the result must repeat them;
  - ``batch`` (every 10th step): a JSON-RPC batch of an ``execute.code`` request (``n = n + 1; n``)
    and an ``execute.code`` notification (``m = m + 1``, no response), the shape that once hung;
    a final check reads ``n m`` per session, so a lost notification is caught too.
An execution slower than ``--stall`` seconds is a stall, listed with its execution_id; one not
done after ``--hang`` seconds ends its client. ``--max-time`` bounds the whole run.

The same workload runs against bare kernels (one jupyter_client client per client, execute,
read IOPub until ``idle`` and then the reply), interleaved in rounds with the bridge so noise
lands on both. Bare kernels are not sandboxed; the server's are unless ``--sandbox off``.
``--load N`` runs N busy loops for the duration (a noisy machine). Exit status 1 on any
stall, error or missing execution.

    .venv/bin/python bench/load.py [-c 8] [-e 200] [--languages python,bash,javascript]
        [--stall 5] [--load N] [--no-save]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from benchlib import (
    RESULTS,
    TOKEN,
    BareKernel,
    Bridge,
    machine,
    percentile,
    save,
    server_process,
    table,
)
from tornado.httpclient import AsyncHTTPClient

from icpy_kernels.runtime.channels import KernelClient
from icpy_kernels.runtime.kernelspecs import kernel_spec_manager

LINES = 5
BATCH_EVERY = 10
KINDS = ("execute", "streaming", "batch")


@dataclass(frozen=True)
class Workload:
    """One language's code; ``{k}``-free: the session's own counter makes each result unique."""

    kernel: str  # the kernelspec of the bare baseline (the bridge picks the same one)
    init: str
    incr: str  # n = n + 1, result n
    stream: str  # n = n + 1, then print "n:i" for i in range(LINES), no result
    notify: str  # m = m + 1 (the batch's notification)
    check: str  # prints "n m"


WORKLOADS = {
    "python": Workload("python3", "n = 0\nm = 0", "n = n + 1\nn",
                       f"n = n + 1\nfor i in range({LINES}):\n    print(f'{{n}}:{{i}}')",
                       "m = m + 1", "print(n, m)"),
    "bash": Workload("icpy-bash", "n=0; m=0", "n=$((n+1)); echo $n",
                     f'n=$((n+1)); for i in $(seq 0 {LINES - 1}); do echo "$n:$i"; done',
                     "m=$((m+1))", 'echo "$n $m"'),
    "javascript": Workload("icpy-javascript", "globalThis.n = 0; globalThis.m = 0; undefined", "n = n + 1; n",
                           f"n = n + 1; for (let i = 0; i < {LINES}; i++) console.log(`${{n}}:${{i}}`);",
                           "m = m + 1; undefined", "console.log(n + ' ' + m);"),
}


def kind_of(step: int) -> str:
    if step % BATCH_EVERY == BATCH_EVERY - 1:
        return "batch"
    return "streaming" if step % 2 else "execute"


def stream_lines(k: int) -> list[str]:
    return [f"{k}:{i}" for i in range(LINES)]


@dataclass
class Sample:
    mode: str
    language: str
    kind: str
    client: int
    step: int
    execution_id: str
    seconds: float
    problem: str | None  # None: checked exactly and right


class BridgeClient:
    """One WebSocket, one named session; runs a step and says what was wrong with it, if anything."""

    mode = "bridge"

    def __init__(self, bridge: Bridge, language: str, session: str) -> None:
        self.bridge, self.language, self.session = bridge, language, session
        self.work = WORKLOADS[language]

    def next_id(self) -> str:
        return f"{self.bridge.prefix}-{self.bridge.n + 1}"  # the id Bridge.execute will use

    async def run(self, code: str, **kw: Any) -> dict[str, Any]:
        return await self.bridge.execute(code, language=self.language, session_id=self.session, **kw)

    async def output(self, code: str) -> list[str]:
        result = await self.run(code)
        return result["output"] if result["status"] == "completed" else [f"status {result['status']}"]

    async def step(self, kind: str, k: int) -> str | None:
        if kind == "execute":
            return check_result(await self.run(self.work.incr), [str(k)])
        if kind == "streaming":
            eid, seqs, text, other = self.next_id(), [], [], []

            def on_event(event: dict[str, Any]) -> None:
                if event.get("execution_id") != eid or event["type"] != "execution_update":
                    return
                seqs.append(event["seq"])
                update = event["update"]
                if update["kind"] == "stream" and update["name"] == "stdout":
                    text.append(update["text"])
                else:
                    other.append(update)

            result = await self.run(self.work.stream, streaming=True, on_event=on_event)
            expected = stream_lines(k)
            if seqs != list(range(1, len(seqs) + 1)):
                return f"seq not contiguous: {seqs}"
            if "".join(text) != "".join(line + "\n" for line in expected) or other:
                return f"streamed {''.join(text)!r} + {other} != {expected}"
            return check_result(result, expected)
        return await self.batch(k)

    async def batch(self, k: int) -> str | None:
        self.bridge.n += 1
        eid = f"{self.bridge.prefix}-{self.bridge.n}"
        params = {"language": self.language, "session_id": self.session}
        await self.bridge.conn.write_message(json.dumps([
            {"jsonrpc": "2.0", "id": eid, "method": "execute.code",
             "params": {**params, "code": self.work.incr, "execution_id": eid}},
            {"jsonrpc": "2.0", "method": "execute.code",
             "params": {**params, "code": self.work.notify, "execution_id": f"{eid}-notify"}},
        ]))
        while True:  # one request outstanding on this socket: the next array is our answer
            raw = await self.bridge.conn.read_message()
            if raw is None:
                raise ConnectionError("server closed the connection")
            answer = json.loads(raw)
            if isinstance(answer, list):
                break
        if len(answer) != 1 or answer[0].get("id") != eid or "result" not in answer[0]:
            return f"batch answer: {answer}"
        return check_result(answer[0]["result"], [str(k)])


def check_result(result: dict[str, Any], output: list[str]) -> str | None:
    if result["status"] != "completed" or result["output"] != output or result["errors"]:
        return f"status {result['status']}, output {result['output']}, errors {result['errors']} (want {output})"
    return None


class BareClient:
    """The same steps on a bare kernel: execute, IOPub until idle, then the reply."""

    mode = "bare"

    def __init__(self, bare: BareKernel, language: str) -> None:
        self.bare, self.language, self.work = bare, language, WORKLOADS[language]
        self.msg_id: str | None = None  # of the step's execute_request, once a message of it is seen

    def next_id(self) -> str:
        self.msg_id = None
        return "bare (no message of it arrived)"

    async def output(self, code: str) -> list[str]:
        lines, problem = await self.run(code)
        return lines if problem is None else [problem]

    async def run(self, code: str) -> tuple[list[str], str | None]:
        """The output lines as the bridge builds them (stdout lines, then the result's text/plain)."""
        stdout, result, other = [], [], []

        def on_msg(msg: dict[str, Any]) -> None:
            kind, content = msg["header"]["msg_type"], msg["content"]
            self.msg_id = msg["parent_header"]["msg_id"]
            if kind == "stream" and content["name"] == "stdout":
                stdout.append(content["text"])
            elif kind == "execute_result":
                result.append(content["data"]["text/plain"])
            elif kind not in ("status", "execute_input"):
                other.append(kind)

        reply = await self.bare.execute(code, on_msg=on_msg)
        lines = "".join(stdout).splitlines() + result
        problem = None if reply["status"] == "ok" and not other else f"reply {reply['status']}, other {other}"
        return lines, problem

    async def step(self, kind: str, k: int) -> str | None:
        code = self.work.stream if kind == "streaming" else self.work.incr
        want = stream_lines(k) if kind == "streaming" else [str(k)]
        if kind == "batch":
            # The bridge runs the request and the notification in the same kernel; so does this.
            # Its reply and IOPub are skipped by BareKernel.execute (another parent msg_id).
            self.bare.kc.execute(self.work.notify)
        lines, problem = await self.run(code)
        return problem or (None if lines == want else f"output {lines} (want {want})")


Client = BridgeClient | BareClient


class Runner:
    """Steps of one client, with the counters its results are checked against."""

    def __init__(self, index: int, client: Client, args: argparse.Namespace) -> None:
        self.index, self.client, self.args = index, client, args
        self.k = 0  # n in the session
        self.batches = 0  # m in the session
        self.step_no = 0
        self.dead: str | None = None  # why this client stopped early

    async def steps(self, count: int, samples: list[Sample]) -> None:
        for _ in range(count):
            if self.dead:
                return
            kind = kind_of(self.step_no + self.index)  # clients out of phase: kinds mix at any moment
            self.k += 1
            self.batches += kind == "batch"
            eid = self.client.next_id()
            t0 = time.perf_counter()
            try:
                problem = await asyncio.wait_for(self.client.step(kind, self.k), self.args.hang)
            except TimeoutError:
                problem = self.dead = f"HUNG: no result after {self.args.hang} s; client stopped"
            except Exception as exc:  # a broken socket or kernel: counted, reported, client stopped
                problem = self.dead = f"{type(exc).__name__}: {exc}"
            seconds = time.perf_counter() - t0
            if isinstance(self.client, BareClient) and self.client.msg_id:
                eid = f"bare msg_id {self.client.msg_id}"
            samples.append(Sample(self.client.mode, self.client.language, kind, self.index, self.step_no, eid,
                                  seconds, problem))
            self.step_no += 1

    async def final_check(self) -> str | None:
        """``n m`` as the session sees it: every increment and every notification ran exactly once."""
        if self.dead:
            return None
        want = [f"{self.k} {self.batches}"]
        got: list[str] = []
        for _ in range(20):  # a notification may still be queued behind the last request
            got = await asyncio.wait_for(self.client.output(self.client.work.check), self.args.hang)
            if got == want:
                return None
            await asyncio.sleep(0.1)
        return f"{self.client.mode} client {self.index} ({self.client.language}): n m = {got}, want {want}"


@contextlib.contextmanager
def busy_loops(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` CPU-bound processes; killed on exit, whatever happens (and they quit if we die)."""
    code = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    for _ in range(10**6): pass\n"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    languages = args.languages.split(",")
    specs = kernel_spec_manager().find_kernel_specs()
    missing = [lang for lang in languages if WORKLOADS[lang].kernel not in specs]
    if missing:
        raise SystemExit(f"no kernelspec for {missing}")
    samples: list[Sample] = []
    phase_seconds = {"bridge": 0.0, "bare": 0.0}
    problems: list[str] = []
    deadline_hit = False
    flags = ("--sandbox", args.sandbox) if args.sandbox else ()
    async with contextlib.AsyncExitStack() as stack:
        profile = str(RESULTS / "server-load.prof") if args.profile else None
        url = await stack.enter_async_context(server_process(*flags, profile=profile))
        health = url.replace("ws://", "http://").split("/ws")[0] + f"/api/health?token={TOKEN}"
        sandbox = json.loads((await AsyncHTTPClient().fetch(health)).body).get("sandbox")
        run_id = uuid.uuid4().hex[:8]
        runners: dict[str, list[Runner]] = {"bridge": [], "bare": []}
        bares: list[BareKernel] = []
        for i in range(args.clients):
            language = languages[i % len(languages)]
            bridge = await Bridge.connect(url)
            stack.callback(bridge.close)
            runners["bridge"].append(Runner(i, BridgeClient(bridge, language, f"load-{run_id}-{i}"), args))
            # Our KernelClient, not jupyter_client's AsyncKernelClient: the stock client's
            # Session.send drains pyzmq's edge-triggered wake-up (the bug the server had), so under
            # load the baseline itself could stall and the ratio would measure that bug.
            bare = BareKernel(WORKLOADS[language].kernel, client_factory=KernelClient)
            stack.push_async_callback(bare.stop)
            bares.append(bare)
            runners["bare"].append(Runner(i, BareClient(bare, language), args))
        t_start = time.perf_counter()
        await asyncio.gather(*(bare.start() for bare in bares))
        init = [r.client.output(r.client.work.init) for mode in runners.values() for r in mode]
        await asyncio.gather(*init)  # bridge sessions start here
        startup = time.perf_counter() - t_start
        print(f"{args.clients} clients x 2 modes started in {startup:.1f} s; sandbox tier: {(sandbox or {}).get('tier')}", flush=True)

        rounds = max(1, min(args.rounds, args.executions))
        per_round = [args.executions // rounds + (r < args.executions % rounds) for r in range(rounds)]
        try:
            async with asyncio.timeout(args.max_time):
                for r, count in enumerate(per_round):
                    order = ("bridge", "bare") if r % 2 == 0 else ("bare", "bridge")
                    for mode in order:
                        t0 = time.perf_counter()
                        await asyncio.gather(*(run.steps(count, samples) for run in runners[mode]))
                        phase_seconds[mode] += time.perf_counter() - t0
                    print(f"round {r + 1}/{rounds} done", flush=True)
                checks = [run.final_check() for mode in runners.values() for run in mode]
                problems += [p for p in await asyncio.gather(*checks) if p]
        except TimeoutError:
            deadline_hit = True
            problems.append(f"DEADLINE: --max-time {args.max_time} s passed; run cut short")
        problems += [f"{r.client.mode} client {r.index}: {r.dead}" for m in runners.values() for r in m if r.dead]
    return report(args, samples, phase_seconds, problems, deadline_hit, sandbox, startup)


def report(args: argparse.Namespace, samples: list[Sample], phase_seconds: dict[str, float], problems: list[str],
           deadline_hit: bool, sandbox: Any, startup: float) -> dict[str, Any]:
    def stats(group: list[Sample]) -> dict[str, Any]:
        ms = [s.seconds * 1000 for s in group]
        return {"n": len(ms), "median": percentile(ms, 0.5), "p90": percentile(ms, 0.9),
                "p99": percentile(ms, 0.99), "max": max(ms, default=float("nan")),
                "stalls": sum(s.seconds > args.stall for s in group), "errors": sum(s.problem is not None for s in group)}

    languages = args.languages.split(",")
    groups: dict[str, dict[str, Any]] = {}
    for lang in (["all"] + languages if len(languages) > 1 else ["all"]):
        for kind in (*KINDS, "all"):
            for mode in ("bare", "bridge"):
                group = [s for s in samples if s.mode == mode and (kind == "all" or s.kind == kind)
                         and (lang == "all" or s.language == lang)]
                if group:
                    groups[f"{mode}|{lang}|{kind}"] = stats(group)
    rows = []
    for key, st in groups.items():
        mode, lang, kind = key.split("|")
        base = groups.get(f"bare|{lang}|{kind}")
        ratios = [st[f] / base[f] if base else float("nan") for f in ("median", "p99")]
        rows.append([mode, lang, kind, st["n"], st["median"], st["p90"], st["p99"], st["max"], st["stalls"],
                     st["errors"], *ratios])
    rate = {mode: sum(s.mode == mode for s in samples) / secs if secs else float("nan")
            for mode, secs in phase_seconds.items()}
    print(f"\nConcurrent load: {args.clients} clients ({args.languages}), {args.executions} executions each per mode, "
          f"{args.rounds} interleaved rounds, {os.cpu_count()} CPUs, {args.load} busy loops, stall > {args.stall} s")
    print(table(["mode", "language", "kind", "n", "median ms", "p90 ms", "p99 ms", "max ms", "stalls", "errors",
                 "×median", "×p99"], rows))
    print(f"executions/s: bridge {rate['bridge']:.1f}, bare {rate['bare']:.1f}, "
          f"bridge/bare {rate['bridge'] / rate['bare']:.3f}" if rate["bare"] else "")
    slow = [s for s in samples if s.seconds > args.stall]
    bad = [s for s in samples if s.problem is not None]
    for s in slow:
        print(f"STALL {s.mode} {s.language} {s.kind} client {s.client} step {s.step} {s.execution_id}: {s.seconds:.2f} s")
    for s in bad[:20]:
        print(f"ERROR {s.mode} {s.language} {s.kind} client {s.client} step {s.step} {s.execution_id}: {s.problem}")
    if len(bad) > 20:
        print(f"... and {len(bad) - 20} more errors")
    for p in problems:
        print(f"PROBLEM {p}")
    expected = 2 * args.clients * args.executions
    ok = not slow and not bad and not problems and len(samples) == expected
    print(f"verdict: {'PASS' if ok else 'FAIL'} ({len(samples)}/{expected} executions, {len(slow)} stalls, "
          f"{len(bad)} errors, {len(problems)} other problems)")
    return {"ok": ok, "args": vars(args), "cpus": os.cpu_count(), "sandbox": sandbox, "startup_s": startup,
            "deadline_hit": deadline_hit, "phase_seconds": phase_seconds, "executions_per_s": rate,
            "stats": groups, "stalls": [asdict(s) for s in slow], "errors": [asdict(s) for s in bad],
            "problems": problems, "machine_end": machine()}


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("-e", "--executions", type=int, default=200, help="executions per client per mode (default 200)")
    parser.add_argument("--languages", default="python", help="comma list of python,bash,javascript; clients spread over them")
    parser.add_argument("--stall", type=float, default=5.0, help="an execution slower than this (s) is a stall (default 5)")
    parser.add_argument("--hang", type=float, default=60.0, help="give up on an execution (and its client) after this (s)")
    parser.add_argument("--max-time", type=float, default=600.0, help="bound on the timed rounds (s, default 600)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved bridge/bare rounds (default 4)")
    parser.add_argument("--load", type=int, default=0, metavar="N", help="run N busy-loop processes meanwhile")
    parser.add_argument("--sandbox", help="the server's --sandbox (default: its own, auto)")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/load-*.json")
    parser.add_argument("--profile", action="store_true",
                        help="run the server under cProfile; dump to bench/results/server-load.prof")
    args = parser.parse_args()
    unknown = set(args.languages.split(",")) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown languages {sorted(unknown)}")
    with busy_loops(args.load):
        data = asyncio.run(main(args))
    if not args.no_save:
        print(f"saved {save('load', data)}")
    return 0 if data["ok"] else 1


if __name__ == "__main__":
    sys.exit(cli())
