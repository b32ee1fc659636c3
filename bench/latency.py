"""(a) Warm round-trip latency of ``1+1``: the bridge over WebSocket vs a bare jupyter_client.

Modes run interleaved in rounds (each round runs every mode N/rounds times) so that the
machine's noise lands on all of them alike. The server is a separate ``icpy serve`` process.

    .venv/bin/python bench/latency.py [-n 500] [--transports tcp,ipc] [--no-save]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from benchlib import BareKernel, Bridge, save, server_process, summary_ms, table

CODE = "1+1"


async def timed(fn: Callable[[], Awaitable[object]], n: int, out: list[float]) -> None:
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t0)


async def main(args: argparse.Namespace) -> dict:
    transports = args.transports.split(",")
    modes: dict[str, Callable[[], Awaitable[object]]] = {}
    notes: dict[str, str] = {}
    async with contextlib.AsyncExitStack() as stack:
        for transport in transports:
            bare = await BareKernel(transport=transport).start()
            stack.push_async_callback(bare.stop)

            async def run_bare(bare: BareKernel = bare) -> None:
                reply = await bare.execute(CODE)
                assert reply["status"] == "ok"

            modes[f"bare jupyter_client ({transport})"] = run_bare

            patches = ("ipc",) if transport == "ipc" else ()
            url = await stack.enter_async_context(server_process(patches=patches))
            session = f"lat-{transport}"
            default = await Bridge.connect(url)
            notes[f"tornado client default TCP_NODELAY ({transport})"] = str(default.nodelay())
            no_nagle = await Bridge.connect(url, nodelay=True)
            nagle = await Bridge.connect(url, nodelay=False)
            for b in (default, no_nagle, nagle):
                stack.callback(b.close)

            def bridge_mode(b: Bridge, streaming: bool, session: str = session) -> Callable[[], Awaitable[object]]:
                async def run() -> None:
                    result = await b.execute(CODE, streaming=streaming, session_id=session)
                    assert result["status"] == "completed" and result["result"]["text/plain"] == "2", result

                return run

            modes[f"bridge execute ({transport})"] = bridge_mode(no_nagle, False)
            modes[f"bridge execute_streaming ({transport})"] = bridge_mode(no_nagle, True)
            modes[f"bridge execute, client Nagle on ({transport})"] = bridge_mode(nagle, False)
            if default.nodelay() is not True:
                modes[f"bridge execute, tornado default client ({transport})"] = bridge_mode(default, False)
            if args.server_nagle:
                nagle_url = await stack.enter_async_context(server_process(patches=(*patches, "server-nagle")))
                server_nagle = await Bridge.connect(nagle_url, nodelay=True)
                stack.callback(server_nagle.close)
                modes[f"bridge execute, server Nagle on ({transport})"] = bridge_mode(server_nagle, False)
                modes[f"bridge execute_streaming, server Nagle on ({transport})"] = bridge_mode(server_nagle, True)

        samples: dict[str, list[float]] = {name: [] for name in modes}
        for fn in modes.values():  # warm-up: kernel start, imports, caches, the session
            await timed(fn, args.warmup, [])
        rounds = max(1, args.rounds)
        for _ in range(rounds):
            for name, fn in modes.items():
                await timed(fn, args.n // rounds, samples[name])

    stats = {name: summary_ms(s) for name, s in samples.items()}
    rows = []
    for name, s in stats.items():
        transport = name.rsplit("(", 1)[1].rstrip(")")
        base = stats[f"bare jupyter_client ({transport})"]
        rows.append([name, s["n"], s["median"], s["p90"], s["p99"], s["median"] - base["median"],
                     s["median"] / base["median"], s["p90"] / base["p90"], s["p99"] / base["p99"]])
    print(f"\nWarm `{CODE}` round trip, ms (N={args.n} per mode, {rounds} interleaved rounds)")
    print(table(["mode", "n", "median", "p90", "p99", "Δmedian vs bare", "×median", "×p90", "×p99"], rows))
    for k, v in notes.items():
        print(f"{k}: {v}")
    for transport in transports:
        bridge = stats[f"bridge execute ({transport})"]["median"]
        bare = stats[f"bare jupyter_client ({transport})"]["median"]
        verdict = "MET" if bridge - bare <= 1.0 else "MISSED"
        print(f"target ({transport}): bridge median within 1 ms of bare: {bridge - bare:+.3f} ms -> {verdict}")
    return {"n": args.n, "rounds": rounds, "code": CODE, "stats": stats, "notes": notes}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=500, help="timed round trips per mode (default 500)")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    parser.add_argument("--transports", default="tcp", help="comma list of tcp,ipc (ZMQ transport to kernels)")
    parser.add_argument("--server-nagle", action="store_true",
                        help="also run a server whose socket keeps Nagle on (patched; an experiment)")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/latency-*.json")
    args = parser.parse_args()
    data = asyncio.run(main(args))
    if not args.no_save:
        print(f"saved {save('latency', data)}")
