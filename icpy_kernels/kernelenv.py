"""Which of the server's environment variables a kernel may see: the allow-lists and their matcher."""

from __future__ import annotations

# A kernel's environment is built from scratch, never inherited: the server's own variables
# (its token among them) never reach user code. Names ending in '*' are prefixes.
# Imports nothing from the package, so runtime/ and provisioning/ can both use it.
BASE = (
    "PATH", "LANG", "LANGUAGE", "LC_*", "TZ", "TERM", "JUPYTER_PATH", "JUPYTER_DATA_DIR",
    "VIRTUAL_ENV", "PYTHONPATH", "NODE_PATH", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
    "MALLOC_ARENA_MAX",
)

# An unsandboxed kernel runs as the server's user in the server's file system, so it keeps that
# user's identity, home, temp and Jupyter directories (and SYSTEMROOT, which Python needs on
# Windows). The sandbox sets HOME, USER, LOGNAME and TMPDIR itself and has no host
# Jupyter directories, so none of these pass there.
LOCAL = BASE + (
    "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_CONFIG_DIR",
    "SYSTEMROOT",
)

# The sandbox passes jupyter's name for the session a kernel serves; the server's own ICPY_*
# settings are dropped there even when an extra pattern would match them (see policy.sandbox_env).
SANDBOX = BASE + ("JPY_SESSION_NAME",)


def allowed(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``name`` is one of ``patterns`` or starts with one ending in '*'."""
    return any(name == p or (p.endswith("*") and name.startswith(p[:-1])) for p in patterns)


def select(source: dict[str, str], patterns: tuple[str, ...]) -> dict[str, str]:
    """The entries of ``source`` whose names ``patterns`` allow, in ``source``'s order."""
    return {k: v for k, v in source.items() if allowed(k, patterns)}
