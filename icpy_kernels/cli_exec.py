"""``icpy exec``: run code, a file or stdin once and stream its output to the terminal."""

from __future__ import annotations

import argparse
import json
import queue
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from .backends import Backend, CannotRun, exit_status, request_params
from .connect import open_backend
from .protocol.iopub import system_exit_code

EXTENSIONS = {".py": "python", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
              ".sh": "bash", ".bash": "bash"}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Shown as text when a rich output has no text/plain (JS display.markdown, say).
READABLE = ("text/plain", "text/markdown", "application/json", "text/latex")
# IPython's advice after a SystemExit in a cell (the warning line and its source line):
# `python` exits without a word, and so does `icpy exec`.
IPYTHON_EXIT_ADVICE = re.compile(r"^[^\n]*UserWarning: To exit: use 'exit', 'quit', or Ctrl-D\.\n(  [^\n]*\n)?", re.M)


def read_source(target: str, language: str | None) -> tuple[str, str]:
    """``CODE | FILE | -`` to ``(code, language)``; an existing path is read as a file."""
    if target == "-":
        return sys.stdin.read(), language or "python"
    path = Path(target)
    one_line = "\n" not in target and len(target) < 4096
    if one_line and path.is_file():
        try:
            code = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CannotRun(f"cannot read {target}: {exc}") from exc
        return code, language or EXTENSIONS.get(path.suffix.lower(), "python")
    if one_line and not any(c.isspace() for c in target) and path.suffix.lower() in EXTENSIONS:
        raise CannotRun(f"cannot read {target}: no such file")
    return target, language or "python"


class Printer:
    """Writes events to the terminal from its own thread.

    Execution listeners must never block (the kernel's IOPub reader calls them), and a
    slow pipe on stdout would; so listeners only enqueue.
    """

    def __init__(self, *, as_json: bool, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.as_json = as_json
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.strip_ansi = not self.err.isatty()
        self._exited = False  # the code called sys.exit()
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._drain, name="icpy-printer", daemon=True)
        self._thread.start()

    def __call__(self, event: dict[str, Any]) -> None:
        self._queue.put(event)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _drain(self) -> None:
        while (event := self._queue.get()) is not None:
            try:
                self.write(event)
            except (BrokenPipeError, ValueError):
                return  # the reader went away (``| head``); the execution still ends cleanly

    def write(self, event: dict[str, Any]) -> None:
        if self.as_json:
            self.out.write(json.dumps(event) + "\n")
            self.out.flush()
            return
        if event["type"] == "execution_update":
            self._update(event["update"])
        elif event["type"] == "execution_result":
            self._result(event)

    def _update(self, update: dict[str, Any]) -> None:
        kind = update["kind"]
        if kind == "stream":
            stream = self.err if update["name"] == "stderr" else self.out
            text = update["text"]
            if self._exited and stream is self.err:
                text = IPYTHON_EXIT_ADVICE.sub("", text)
            stream.write(text)
            stream.flush()
        elif kind in ("result", "display"):
            self.out.write(render_data(update["data"]) + "\n")
            self.out.flush()
        elif kind == "error" and system_exit_code(update) is not None:
            # As python: sys.exit("message") prints the message, a number prints nothing.
            self._exited = True
            if system_exit_code(update) == 1 and update["evalue"] != "1":
                self.out.flush()
                self.err.write(update["evalue"] + "\n")
                self.err.flush()
        elif kind == "error":
            lines = update["traceback"] or [f"{update['ename']}: {update['evalue']}"]
            text = "\n".join(lines)
            self.out.flush()
            self.err.write((ANSI.sub("", text) if self.strip_ansi else text) + "\n")
            self.err.flush()

    def _result(self, result: dict[str, Any]) -> None:
        notes = []
        if result["status"] == "timeout":
            notes.append(f"icpy: timed out after {result['execution_time']:.1f}s")
        elif result["status"] == "interrupted":
            notes.append("icpy: interrupted")
        if result.get("kernel_restarted"):
            notes.append("icpy: the kernel was restarted; its state is lost")
        if notes:
            self.out.flush()
            self.err.write("\n".join(notes) + "\n")
            self.err.flush()


def render_data(data: dict[str, Any]) -> str:
    """A mime bundle as terminal text: the first readable type, else a placeholder."""
    for mime in READABLE:
        if mime in data:
            value = data[mime]
            if isinstance(value, list):
                return "".join(value)
            return value if isinstance(value, str) else json.dumps(value, indent=1)
    kinds = ", ".join(sorted(data)) or "empty"
    return f"[{kinds} output]"


async def run_exec(args: argparse.Namespace, register: Callable[[Backend], None]) -> int:
    code, language = read_source(args.code, args.language)
    if not code.strip():
        raise CannotRun("no code to run")
    params = request_params(code, language, args)
    printer = Printer(as_json=args.json)
    backend = await open_backend(args.url, args.token)
    register(backend)
    try:
        result = await backend.execute(params, printer)
    finally:
        try:
            await backend.close()
        finally:
            printer.close()
    return exit_status(result)
