"""Session workspaces: where they live and what may be a working directory."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path


def workspace_for(root: str | Path, session_id: str) -> Path:
    """A directory name for any session id (ids may contain ':' or be '..'): readable, unique."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", session_id)[:64]
    digest = hashlib.sha256(session_id.encode()).hexdigest()[:8]
    return Path(root) / f"{safe}-{digest}"


def resolve_inside(workspace: Path | str, requested: str) -> str:
    """The real path of ``requested`` (relative to the workspace), if it stays inside it."""
    base = Path(workspace).resolve()
    target = (base / requested).resolve()
    if target != base and base not in target.parents:
        raise ValueError(f"{requested!r} resolves to {str(target)!r}, outside the session workspace")
    return str(target)
