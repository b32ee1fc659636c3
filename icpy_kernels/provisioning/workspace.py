"""Session workspaces: where they live and what may be a working directory."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path


def workspace_for(root: str | Path, session_id: str) -> Path:
    """A directory name for any session id (ids may contain ':' or be '..'): readable, unique."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", session_id)[:64]
    digest = hashlib.sha256(session_id.encode()).hexdigest()[:8]
    return Path(root) / f"{safe}-{digest}"


MAX_SYMLINKS = 40  # Linux's own limit when it resolves a path


def resolve_inside(workspace: Path | str, requested: str) -> str:
    """The workspace path ``requested`` (relative to the workspace) names, if it stays inside.

    The workspace's contents belong to the kernel: a symlink in it may point anywhere, e.g.
    ``/proc/self/cwd``, which the *server* would resolve to its own cwd. So nothing here
    follows a link on the host: the path is walked one component at a time with ``lstat``,
    a link's target is read and walked in turn, and a link with an absolute target, or a
    ``..`` above the workspace, is refused. A refusal names only what the client sent,
    never a target, so the server's file system cannot be probed through it. A component
    that does not exist (or cannot be read) is kept as written: the kernel's own ``chdir``
    then says the directory does not exist. Raises ValueError.
    """
    base = os.path.realpath(workspace)  # the server's own setting, not the kernel's data
    try:
        os.fsencode(requested)
    except UnicodeError:
        raise ValueError(f"{requested!r} is not a valid path") from None
    outside = ValueError(f"{requested!r} leaves the session workspace")
    if os.path.isabs(requested):
        names = [n for n in requested.split("/") if n not in ("", ".")]
        prefix = [n for n in base.split("/") if n]
        if names[:len(prefix)] != prefix:
            raise outside
        pending = names[len(prefix):]
    else:
        pending = requested.split("/")
    pending.reverse()  # a stack: the next component last
    parts: list[str] = []  # below base: directories that are no symlinks (or missing ones)
    links = 0
    while pending:
        name = pending.pop()
        if name in ("", "."):
            continue
        if name == "..":
            if not parts:
                raise outside
            parts.pop()  # a real directory (or a missing one): its parent is lexical
            continue
        path = os.path.join(base, *parts, name)
        try:
            is_link = stat.S_ISLNK(os.lstat(path).st_mode)
            target = os.readlink(path) if is_link else ""
        except OSError:  # missing, under a file, unreadable, or just replaced: the kernel's call
            is_link = False
        if not is_link:
            parts.append(name)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise ValueError(f"{requested!r}: too many levels of symbolic links")
        if os.path.isabs(target):
            raise outside
        pending.extend(reversed(target.split("/")))
    return os.path.join(base, *parts)
