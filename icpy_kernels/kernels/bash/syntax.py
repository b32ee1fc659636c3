"""Shell-syntax helpers: the word under the cursor, completion context, and `bash -n` checks."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

# Characters that end a shell word for completion purposes ('=' so `VAR=/us` completes a path).
_BREAK = set(" \t\n;|&()<>`\"'=")
# After these a word is in command position.
_COMMAND_LEADERS = {
    "", ";", "|", "&", "(", "`", "{", "!", "&&", "||", "|&", "$(",
    "then", "do", "else", "elif", "if", "while", "until", "time", "sudo", "exec",
    "command", "builtin", "xargs", "env", "nohup", "nice",
}  # fmt: skip
_SPECIAL = re.compile(r"""([ \t"'\\$`!&;|()<>*?\[\]{}#])""")
_NAME = re.compile(r"[A-Za-z0-9_]*")
_INTERNAL = "__icpy_"


@dataclass
class CompletionContext:
    """What to ask bash for (kind, query) and how to turn its answer into matches."""

    kind: str  # cmd | var | path
    query: str
    start: int
    prefix: str = ""  # prepended to every match (e.g. "$" or "${")
    suffix: str = ""  # appended to every match (e.g. "}")

    def matches(self, out: str) -> list[str]:
        if self.kind == "path":
            dirs_text, _, files_text = out.partition("\1\n")
            dirs = set(dirs_text.splitlines())
            found = [f + "/" if f in dirs else f for f in files_text.splitlines() if f]
            # Keep a leading ~ unescaped so tilde expansion still happens.
            return sorted({_escape(f) for f in found})
        names = {n for n in out.splitlines() if n and not n.startswith(_INTERNAL)}
        return sorted(self.prefix + n + self.suffix for n in names)


def _escape(path: str) -> str:
    head = "~" if path.startswith("~") else ""
    return head + _SPECIAL.sub(r"\\\1", path[len(head) :])


def _word_start(text: str) -> int:
    i = len(text)
    while i > 0 and (text[i - 1] not in _BREAK or (i > 1 and text[i - 2] == "\\")):
        i -= 1
    return i


def _previous_token(text: str) -> str:
    stripped = text.rstrip(" \t")
    if not stripped or stripped[-1] == "\n":
        return ""
    for op in ("&&", "||", "|&", "$("):
        if stripped.endswith(op):
            return op
    if stripped[-1] in ";|&(`{!":
        return stripped[-1]
    return re.split(r"[\s;|&(`]", stripped)[-1]


def completion_context(code: str, cursor_pos: int) -> CompletionContext:
    text = code[:cursor_pos]
    start = _word_start(text)
    word = text[start:]
    dollar = word.rfind("$")
    if dollar >= 0:
        tail = word[dollar + 1 :]
        if tail.startswith("{") and _NAME.fullmatch(tail[1:]):
            return CompletionContext("var", tail[1:], start, word[: dollar + 2], "}")
        if _NAME.fullmatch(tail):
            return CompletionContext("var", tail, start, word[: dollar + 1])
    plain = re.sub(r"\\(.)", r"\1", word)
    if "/" not in word and _previous_token(text[:start]) in _COMMAND_LEADERS:
        return CompletionContext("cmd", plain, start)
    return CompletionContext("path", plain, start)


def word_at(code: str, cursor_pos: int) -> str:
    """The word around the cursor (for inspection), keeping a leading `$`."""
    start = _word_start(code[:cursor_pos])
    end = cursor_pos
    while end < len(code) and code[end] not in _BREAK:
        end += 1
    word = code[start:end]
    if word.startswith("${"):
        word = "$" + word[2:].rstrip("}")
    return word


def _trailing_backslash(code: str) -> bool:
    stripped = code.rstrip("\n") if code.endswith("\n") and not code.endswith("\\\n") else code
    stripped = stripped.rstrip("\n")
    run = len(stripped) - len(stripped.rstrip("\\"))
    return run % 2 == 1 and not code.endswith("\n\n")


def is_complete(code: str) -> str:
    """complete / incomplete / invalid, judged by `bash -n` in a separate process."""
    if not code.strip():
        return "complete"
    if _trailing_backslash(code):
        return "incomplete"
    try:
        proc = subprocess.run(
            ["bash", "-O", "extglob", "-n"],
            input=code.encode("utf-8", "surrogateescape"),
            capture_output=True,
            timeout=5,
            start_new_session=True,  # keep SIGINT aimed at the kernel away from it
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    err = proc.stderr.decode("utf-8", "replace")
    if (
        "unexpected end of file" in err
        or "unexpected EOF" in err
        or "delimited by end-of-file" in err
    ):
        return "incomplete"
    return "invalid" if proc.returncode != 0 else "complete"
