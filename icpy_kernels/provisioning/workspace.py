"""Session workspaces: where they live, how big they are, what may be a working directory."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path


def workspace_for(root: str | Path, session_id: str) -> Path:
    """A directory name for any session id (ids may contain ':' or be '..'): readable, unique."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", session_id)[:64]
    digest = hashlib.sha256(session_id.encode()).hexdigest()[:8]
    return Path(root) / f"{safe}-{digest}"


def disk_usage(path: Path | str) -> int:
    """Bytes allocated under ``path`` (symlinks not followed; a vanished entry counts 0)."""
    total = 0
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
    return total


def total_usage(paths: list[Path]) -> int:
    return sum(disk_usage(p) for p in paths)


def resolve_inside(workspace: Path | str, requested: str) -> str:
    """The real path of ``requested`` (relative to the workspace), if it stays inside it."""
    base = Path(workspace).resolve()
    target = (base / requested).resolve()
    if target != base and base not in target.parents:
        raise ValueError(f"{requested!r} resolves to {str(target)!r}, outside the session workspace")
    return str(target)
