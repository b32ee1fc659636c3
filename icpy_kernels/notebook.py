"""``icpy run``: execute a notebook's code cells in one session and write nbformat v4 outputs."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from .backends import (
    EXIT_FAILED,
    EXIT_OK,
    Backend,
    CannotRun,
    exit_status,
    request_params,
)
from .connect import open_backend
from .runtime.languages import BUILTIN_LANGUAGES

# nbclient's convention: a cell tagged so is expected to fail and does not stop the run.
RAISES_TAG = "raises-exception"
KERNEL_LANGUAGES = {lang.kernel_name: lang.name for lang in BUILTIN_LANGUAGES}


def load_notebook(path: str) -> Any:
    import nbformat

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CannotRun(f"cannot read {path}: {exc.strerror if isinstance(exc, OSError) else exc}") from exc
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises JSON, reader and validation errors alike
        raise CannotRun(f"{path} is not a notebook: {exc}") from exc
    if not isinstance(nb.get("cells"), list):
        raise CannotRun(f"{path} is not a notebook: no 'cells' list")
    return nb


def notebook_language(nb: Any, override: str | None) -> str:
    """The language the bridge knows the notebook's kernel by (``kernel:<name>`` otherwise)."""
    if override:
        return override
    name = (nb.metadata.get("kernelspec") or {}).get("name")
    if name:
        return KERNEL_LANGUAGES.get(name, f"kernel:{name}")
    return (nb.metadata.get("language_info") or {}).get("name") or "python"


def output_path(args: argparse.Namespace) -> str:
    """``-o PATH`` (``-`` is stdout), ``--inplace``, or ``NAME.out.ipynb`` beside the input."""
    if args.inplace:
        return args.notebook
    if args.output:
        return args.output
    path = Path(args.notebook)
    stem = path.name[: -len(".ipynb")] if path.name.endswith(".ipynb") else path.name
    return str(path.with_name(stem + ".out.ipynb"))


def first_line(source: str, width: int = 50) -> str:
    line = next((s.strip() for s in source.splitlines() if s.strip()), "")
    return line if len(line) <= width else line[: width - 3] + "..."


class Progress:
    """``[k/N] cell i: first line`` on stderr: redrawn in place on a tty, one line per cell otherwise."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def cell(self, k: int, index: int, source: str) -> None:
        line = f"[{k}/{self.total}] cell {index}: {first_line(source)}"
        if self.tty:
            # A line that wraps could not be redrawn in place by \r.
            width = shutil.get_terminal_size().columns - 1
            self.stream.write(f"\r{line[:width]}\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        self.stream.write(("\r\x1b[K" if self.tty else "") + text + "\n")
        self.stream.flush()


def _ignore(event: dict[str, Any]) -> None:
    pass


def failure_text(index: int, result: dict[str, Any]) -> str:
    if result["status"] == "timeout":
        return f"icpy: cell {index} timed out after {result['execution_time']:.1f}s"
    error = result.get("error") or {}
    what = f"{error.get('ename', '')}: {error.get('evalue', '')}" if error else result["status"]
    return f"icpy: cell {index} failed: {what}"


async def run_notebook(args: argparse.Namespace, register: Callable[[Backend], None]) -> int:
    import nbformat

    nb = load_notebook(args.notebook)
    target = output_path(args)
    language = notebook_language(nb, args.language)
    cells = [(i, c) for i, c in enumerate(nb.cells, 1) if c.cell_type == "code"]
    progress = Progress(len(cells))
    started = time.monotonic()
    status, ran = EXIT_OK, 0
    backend = await open_backend(args.url, args.token)
    register(backend)
    try:
        for k, (index, cell) in enumerate(cells, 1):
            cell.outputs, cell.execution_count = [], None
            progress.cell(k, index, cell.source)
            if not cell.source.strip():
                continue
            result = await backend.execute(request_params(cell.source, language, args), _ignore)
            ran += 1
            cell.outputs = [nbformat.from_dict(o) for o in result["outputs"]]
            cell.execution_count = result["execution_count"]
            code = exit_status(result)
            if code == EXIT_OK:
                continue
            expected = result["status"] == "failed" and (
                RAISES_TAG in cell.metadata.get("tags", []) or args.allow_errors)
            progress.message(failure_text(index, result) + (" (allowed)" if expected else ""))
            if expected:
                continue
            status = code if result["status"] != "failed" else EXIT_FAILED
            break
    finally:
        await backend.close()
    nbformat.validate(nb)
    write_notebook(nb, target)
    shown = "stdout" if target == "-" else target
    verdict = "ok" if status == EXIT_OK else "failed"
    progress.message(f"icpy: {verdict}: ran {ran}/{len(cells)} code cells "
                     f"in {time.monotonic() - started:.1f}s -> {shown}")
    return status


def write_notebook(nb: Any, target: str) -> None:
    import nbformat

    text = nbformat.writes(nb, version=4)
    if target == "-":
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return
    # Written whole then renamed, so an interrupted run never leaves half a notebook.
    path = Path(target)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)

