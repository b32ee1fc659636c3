"""The ``icpy`` command: serve | exec | run | kernels | doctor."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from . import __version__
from .config import SANDBOX_SETTINGS, add_arguments, load_settings


def cmd_serve(args: argparse.Namespace) -> int:
    from .server.app import serve

    settings = load_settings(args)
    asyncio.run(serve(settings))
    return 0


TERM_GRACE = 3.0  # seconds SIGTERM waits for the interrupted code before cancelling
Command = Callable[[Callable[[Any], None]], Coroutine[Any, Any, int]]


def run_async(command: Command) -> int:
    """``asyncio.run`` with the CLI's signal rules, so the kernels it started always stop.

    ``command`` is called with a callback to register its backend. The first Ctrl-C
    interrupts the running code through it (the command then ends with status 130); a
    second one, or SIGTERM, cancels the command, whose cleanup still stops every kernel.
    """
    backends: list[Any] = []
    exit_code = {"code": 130}

    async def main() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        interrupted = False

        async def interrupt() -> None:
            if not backends or not await backends[-1].interrupt():
                task.cancel()

        def on_sigint() -> None:
            nonlocal interrupted
            if interrupted:
                task.cancel()
                return
            interrupted = True
            print("\nicpy: interrupting (Ctrl-C again to stop now)", file=sys.stderr, flush=True)
            loop.create_task(interrupt())

        def on_sigterm() -> None:
            # Interrupt first: a kernel shut down mid-execution fails noisily on its way out.
            exit_code["code"] = 128 + signal.SIGTERM
            loop.create_task(interrupt())
            loop.call_later(TERM_GRACE, task.cancel)

        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, on_sigterm)
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        code = await command(backends.append)
        return exit_code["code"] if exit_code["code"] != 130 else code

    try:
        return asyncio.run(main())
    except (asyncio.CancelledError, KeyboardInterrupt):
        print("icpy: stopped", file=sys.stderr)
        return exit_code["code"]


def _client_args(args: argparse.Namespace) -> None:
    from .backends import parse_env

    if args.local:
        args.url = None
    args.env_vars = parse_env(args.env, dict(os.environ))


def cmd_exec(args: argparse.Namespace) -> int:
    from .cli_exec import run_exec

    _client_args(args)
    return run_async(lambda register: run_exec(args, register))


def cmd_run(args: argparse.Namespace) -> int:
    from .notebook import run_notebook

    _client_args(args)
    return run_async(lambda register: run_notebook(args, register))


def cmd_kernels(args: argparse.Namespace) -> int:
    from .runtime.kernelspecs import install_kernelspecs, install_problems, kernel_spec_manager
    from .runtime.languages import LanguageTable

    if args.kernels_command == "install":
        prefix = args.prefix or (sys.prefix if args.sys_prefix else None)
        installed = install_kernelspecs(user=args.user, prefix=prefix, sandbox=args.sandbox)
        for name, path in installed:
            print(f"installed {name} -> {path}")
        problems = install_problems(installed, sandbox=args.sandbox)
        for line in problems:
            print(f"icpy: {line}", file=sys.stderr)
        # A spec that does not take effect is a failed install (for --sandbox, a silent hole).
        return int(any(line.startswith("warning") for line in problems))
    ksm = kernel_spec_manager()
    table = LanguageTable(ksm, load_settings(None).language_overrides)
    by_kernel = {}
    for lang in table.languages():
        by_kernel.setdefault(lang.kernel_name, []).append(lang.name)
    for name, path in sorted(ksm.find_kernel_specs().items()):
        langs = ", ".join(by_kernel.get(name, [])) or f"kernel:{name}"
        print(f"{name:<20} {langs:<20} {path}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .provisioning.doctor import report

    text, status = asyncio.run(report(load_settings(args)))
    print(text)
    return status


def _missing_command(parser: argparse.ArgumentParser, commands: str) -> Callable[[argparse.Namespace], int]:
    """A ``func`` for a parser run without its subcommand: name the choices, exit 2."""
    def func(args: argparse.Namespace) -> int:
        parser.error(f"choose a command:\n{commands}\n'{parser.prog} COMMAND --help' shows its options")
        return 2  # not reached: error() exits 2

    return func


def _subcommands(sub: Any) -> str:
    """The subcommands and their one-line help, as --help lists them."""
    return "\n".join(f"  {a.dest:<9} {a.help}" for a in sub._choices_actions)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def _format_action(self, action: argparse.Action) -> str:
        text = super()._format_action(action)
        if isinstance(action, argparse._SubParsersAction):  # a lone "COMMAND" line above the list
            text = text.split("\n", 1)[1]
        return text


def _readable_metavars(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:  # "--port N" reads better than "--port PORT"
        if action.metavar is None and action.option_strings and action.type in (int, float):
            action.metavar = "SECONDS" if action.type is float else "N"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="icpy", description=DESCRIPTION, epilog="'icpy COMMAND --help' shows a command's options.",
        formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"icpy_kernels {__version__}")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    serve = sub.add_parser(
        "serve", help="run the WebSocket/REST server", epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the server until SIGINT or SIGTERM, then shut every kernel down.\n"
                    "Every option can also be set by its ICPY_* environment variable; flags win.")
    add_arguments(serve)
    _readable_metavars(serve)
    serve.set_defaults(func=cmd_serve)

    run_help = "run code, a file or stdin once and stream its output"
    exec_ = sub.add_parser(
        "exec", help=run_help, description=run_help + ".", epilog=EXEC_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    exec_.add_argument("code", metavar="CODE | FILE | -",
                       help="code to run, a file to run (its extension picks the language), or - for stdin")
    exec_.add_argument("-l", "--language", help="python (default), javascript, bash, or kernel:<kernelspec>")
    exec_.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                       help="stop the code after this long, exit status 124 (default ICPY_DEFAULT_TIMEOUT "
                            "or 30; 0 = no limit)")
    exec_.add_argument("--json", action="store_true",
                       help="print the raw events (execution_started, execution_update, ..., "
                            "execution_result) as JSON, one per line")
    _add_client_arguments(exec_)
    exec_.set_defaults(func=cmd_exec)

    nb_help = "execute a notebook's code cells in one kernel session and save the outputs"
    run = sub.add_parser(
        "run", help=nb_help, description=nb_help + ".", epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("notebook", metavar="NOTEBOOK.ipynb")
    out = run.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", metavar="OUT.ipynb",
                     help="where to write the executed notebook (- for stdout; default NAME.out.ipynb "
                          "next to the input)")
    out.add_argument("--inplace", action="store_true", help="overwrite the input notebook")
    run.add_argument("--timeout-per-cell", dest="timeout", type=float, default=600.0, metavar="SECONDS",
                     help="stop a cell after this long; the run stops with exit status 124 "
                          "(default 600; 0 = no limit)")
    run.add_argument("--allow-errors", action="store_true",
                     help="keep going after a cell fails (exit status 0); without it the run stops "
                          "at the first error (exit status 1), except in cells tagged raises-exception")
    run.add_argument("-l", "--language",
                     help="run in this language instead of the one metadata.kernelspec.name names")
    _add_client_arguments(run)
    run.set_defaults(func=cmd_run)

    kernels = sub.add_parser("kernels", help="list or install kernelspecs", formatter_class=_Formatter,
                             description="List the kernelspecs icpy can run, or install its own for "
                                         "other Jupyter front ends.")
    ksub = kernels.add_subparsers(dest="kernels_command", metavar="COMMAND", title="commands")
    ksub.add_parser("list", help="the kernelspecs icpy can run: name, languages, path",
                    description="List the kernelspecs icpy can run: name, languages, path.")
    install = ksub.add_parser(
        "install", help="install the python3, icpy-bash and icpy-javascript kernelspecs",
        description="Install the python3, icpy-bash and icpy-javascript kernelspecs for other "
                    "Jupyter front ends\n(icpy itself finds its own without this).",
        epilog=INSTALL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="into the user's Jupyter data dir")
    where.add_argument("--sys-prefix", action="store_true", help="into sys.prefix (this venv)")
    where.add_argument("--prefix", help="into PREFIX/share/jupyter/kernels")
    install.add_argument("--sandbox", action="store_true",
                         help="name the icpy-sandbox provisioner in the specs, so every Jupyter "
                              "front end launches them sandboxed")
    kernels.set_defaults(func=_missing_command(kernels, _subcommands(ksub)))
    for name in ("list", "install"):
        ksub.choices[name].set_defaults(func=cmd_kernels)

    doctor = sub.add_parser(
        "doctor", help="show the sandbox tier and the limits this machine enforces",
        epilog=DOCTOR_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Show which sandbox tier a server's kernels get on this machine and how each "
                    "limit is enforced.\nIt takes icpy serve's sandbox options (also read from ICPY_*) and "
                    "reports what a server\nstarted with them would do.")
    add_arguments(doctor, SANDBOX_SETTINGS)
    _readable_metavars(doctor)
    doctor.set_defaults(func=cmd_doctor)
    parser.set_defaults(func=_missing_command(parser, _subcommands(sub)))
    return parser


def _add_client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--session", metavar="ID",
                        help="run in this named session (kept between commands only by a server)")
    parser.add_argument("-e", "--env", action="append", metavar="NAME[=VALUE]",
                        help="set an environment variable for the code (repeatable); without "
                             "=VALUE, pass this shell's value")
    parser.add_argument("--url", default=os.environ.get("ICPY_URL") or None, metavar="ws://HOST:PORT/ws",
                        help="run on this icpy server instead of a local kernel [env ICPY_URL]")
    parser.add_argument("--token", default=os.environ.get("ICPY_TOKEN") or None,
                        help="the server's access token [env ICPY_TOKEN]")
    parser.add_argument("--local", action="store_true", help="run locally even if ICPY_URL is set")


DESCRIPTION = """\
Run Python, JavaScript and Bash in stateful Jupyter-kernel sessions: a WebSocket/JSON-RPC/REST
server (serve), one-off runs from the shell (exec, run), and the kernelspecs and sandbox
behind them (kernels, doctor)."""

EXEC_EXIT_STATUSES = """exit status:
  0    the code ran and succeeded
  1    the code raised an error
  2    the code did not run: unreadable file, unknown language, no server, refused token,
       kernel failed to start
  124  timed out
  130  interrupted (Ctrl-C)
  143  stopped by SIGTERM
  N    a kernel's own exit status, passed on (icpy exec -l bash 'exit 3' exits 3)"""

RUN_EXIT_STATUSES = """exit status:
  0    every cell ran (with --allow-errors: whether or not some failed)
  1    a cell failed and the run stopped there (cells tagged raises-exception may fail)
  2    nothing ran: unreadable or invalid notebook, unknown kernel, no server, refused
       token, kernel failed to start
  124  a cell timed out (the run always stops there)
  130  interrupted (Ctrl-C)
  143  stopped by SIGTERM
The output notebook is written in every case but 2."""

INSTALL_EPILOG = """\
Without --user, --sys-prefix or --prefix the specs go to the system-wide Jupyter dir.
After installing, each name is looked up as a Jupyter front end would (same JUPYTER_PATH
and data dirs). When another spec of that name comes first (a venv's own python3 ahead
of --user's, say), it says which and where to install instead, and exits 1.

examples:
  icpy kernels install --sys-prefix             # into this venv
  icpy kernels install --user --sandbox         # JupyterLab etc. launch them sandboxed"""

DOCTOR_EPILOG = """\
exit status: 0, or 1 when --sandbox require (or a forced --sandbox-tier) cannot be met here.

examples:
  icpy doctor
  icpy doctor --sandbox require --memory-limit 536870912"""

SERVE_EPILOG = """\
The server prints its URL (ws://HOST:PORT/ws?token=...) on startup; clients connect to /ws
with the token as ?token= or an "Authorization: Bearer" header.

examples:
  icpy serve                                  # 127.0.0.1:8765, token generated and printed
  ICPY_TOKEN=secret icpy serve --port 0       # a free port, a chosen token
  icpy serve --default-timeout 60 --language ruby=ruby3"""

EXEC_EPILOG = f"""\
By default the code runs in a kernel started for this command and stopped when it ends
(no server needed), unsandboxed, as "python script.py" would be (ICPY_SANDBOX=auto sandboxes
it). With --url (or ICPY_URL) it runs on an "icpy serve" server instead.
stdout and stderr stream to stdout and stderr as they are produced; rich results are
shown as text/plain; tracebacks go to stderr.

examples:
  icpy exec 'print(6 * 7)'
  icpy exec script.py                 # .py python, .js/.mjs javascript, .sh bash
  echo 'ls /' | icpy exec -l bash -
  icpy exec --json -l js 'display.html("<b>hi</b>")'
  icpy exec --url ws://127.0.0.1:8765/ws --token T --session work 'x = 1'

{EXEC_EXIT_STATUSES}"""

RUN_EPILOG = f"""\
The kernel is the one the notebook's metadata.kernelspec.name names: python3, icpy-javascript,
icpy-bash, or any installed kernelspec. Cells run in order in one session; each cell's
outputs and execution_count are written as nbformat v4. The output notebook is written
even when the run stops early, so the failing cell's traceback is in it. Progress goes to
stderr as "[k/N] cell i: first line".

examples:
  icpy run notebooks/python-tour.ipynb                 # -> notebooks/python-tour.out.ipynb
  icpy run analysis.ipynb --inplace --timeout-per-cell 120
  icpy run tour.ipynb -o - --allow-errors > executed.ipynb
  icpy run client.ipynb -e ICPY_URL -e ICPY_TOKEN

{RUN_EXIT_STATUSES}"""


def main(argv: list[str] | None = None) -> int:
    from .backends import EXIT_CANNOT_RUN, CannotRun, describe_error
    from .errors import IcpyError

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (CannotRun, IcpyError) as exc:
        print(f"icpy: error: {describe_error(exc)}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except KeyboardInterrupt:
        print("icpy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
