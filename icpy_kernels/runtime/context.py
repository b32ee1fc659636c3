"""Per-execution working directory and environment, as code each kernel runs around a cell.

The values never touch the user's code: they travel as one JSON document embedded as a
string literal of the target language (Python ``repr``, JavaScript JSON, bash single quotes),
so quotes, newlines or code inside a value arrive as literal text.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ValidationError
from ..provisioning.workspace import resolve_inside


@dataclass(frozen=True)
class ContextCode:
    enter: str
    exit: str


ContextBuilder = Callable[[str | None, dict[str, str]], ContextCode]


def _payload(cwd: str | None, env: dict[str, str]) -> str:
    return json.dumps({"cwd": cwd, "env": env}, ensure_ascii=True)


def python_context(cwd: str | None, env: dict[str, str]) -> ContextCode:
    enter = (
        "def _icpy_enter(raw):\n"
        "    import json, os\n"
        "    p = json.loads(raw)\n"
        "    saved = (os.getcwd(), {k: os.environ.get(k) for k in p['env']})\n"
        "    if p['cwd'] is not None:\n"
        "        os.chdir(p['cwd'])\n"
        "    os.environ.update(p['env'])\n"
        "    return saved\n"
        f"_icpy_saved = _icpy_enter({_payload(cwd, env)!r})\n"
        "del _icpy_enter\n"
    )
    exit_ = (
        "def _icpy_exit(saved):\n"
        "    import os\n"
        "    cwd, env = saved\n"
        "    try:\n"
        "        os.chdir(cwd)\n"
        "    except OSError:\n"
        "        pass\n"
        "    for k, v in env.items():\n"
        "        if v is None:\n"
        "            os.environ.pop(k, None)\n"
        "        else:\n"
        "            os.environ[k] = v\n"
        "_icpy_exit(_icpy_saved)\n"
        "del _icpy_exit, _icpy_saved\n"
    )
    return ContextCode(enter, exit_)


def javascript_context(cwd: str | None, env: dict[str, str]) -> ContextCode:
    enter = (
        "{ const p = JSON.parse(" + json.dumps(_payload(cwd, env)) + ");\n"
        "  globalThis.__icpy_saved = { cwd: process.cwd(),"
        " env: Object.fromEntries(Object.keys(p.env).map(k => [k, process.env[k]])) };\n"
        "  if (p.cwd !== null) process.chdir(p.cwd);\n"
        "  Object.assign(process.env, p.env); }\nundefined;\n"
    )
    exit_ = (
        "{ const s = globalThis.__icpy_saved; delete globalThis.__icpy_saved;\n"
        "  if (s) { try { process.chdir(s.cwd); } catch (e) {}\n"
        "    for (const [k, v] of Object.entries(s.env)) {\n"
        "      if (v === undefined) delete process.env[k]; else process.env[k] = v; } } }\nundefined;\n"
    )
    return ContextCode(enter, exit_)


def bash_quote(value: str) -> str:
    """Single-quote for bash: nothing inside single quotes is special but the quote itself."""
    return "'" + value.replace("'", "'\\''") + "'"


def bash_context(cwd: str | None, env: dict[str, str]) -> ContextCode:
    names = " ".join(env)  # validated as identifiers, safe to list bare
    lines = ["_icpy_saved_pwd=$PWD"]
    if env:
        lines.append(f"_icpy_saved_env=$(declare -p {names} 2>/dev/null)")
    steps = []
    if cwd is not None:
        steps.append(f"cd -- {bash_quote(cwd)}")
    if env:
        steps.append("export " + " ".join(f"{k}={bash_quote(v)}" for k, v in env.items()))
    # The last command's status is the cell's: a failed cd fails the whole enter step.
    lines.append(" && ".join(steps) if steps else "true")
    enter = "\n".join(lines) + "\n"
    exit_lines = ['cd -- "$_icpy_saved_pwd" 2>/dev/null']
    if env:
        exit_lines += [f"unset {names}", 'eval "$_icpy_saved_env"']
    exit_lines.append("unset _icpy_saved_pwd _icpy_saved_env; true")
    return ContextCode(enter, "\n".join(exit_lines) + "\n")


async def enter(builder: ContextBuilder | None, language: str, workspace: str | None,
                execution_id: str, working_directory: str | None, environment: dict[str, str],
                run_silent: Callable[[str], Awaitable[dict[str, Any]]]) -> ContextCode | None:
    """Apply an execution's cwd/environment in its kernel; the ``ContextCode`` to undo it
    afterwards, or None when the execution asked for neither.

    Raises ``ValidationError`` for a language without context code, a directory outside the
    workspace or one the kernel cannot enter. A ``ConnectionError`` (the kernel went away
    under this step) is the caller's to interpret.
    """
    if working_directory is None and not environment:
        return None
    if builder is None:
        raise ValidationError(
            f"config.working_directory/environment are not supported for {language}",
            field="config", execution_id=execution_id)
    cwd = working_directory
    if cwd is not None and workspace is not None:
        # Relative to the workspace and never outside it; a thread, since it touches
        # the file system (as often as the kernel's symlinks make it).
        try:
            cwd = await asyncio.to_thread(resolve_inside, workspace, cwd)
        except ValueError as exc:
            raise ValidationError(str(exc), field="config.working_directory",
                                  execution_id=execution_id) from exc
    context = builder(cwd, environment)
    reply = await run_silent(context.enter)
    if reply.get("status") != "ok":
        await run_silent(context.exit)
        raise ValidationError(
            f"Working directory {working_directory!r} does not exist or is not accessible"
            if working_directory is not None else
            f"Environment could not be applied: {reply.get('evalue', '')}",
            field="config.working_directory" if working_directory else "config.environment",
            execution_id=execution_id)
    return context
