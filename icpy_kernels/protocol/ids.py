"""The id and environment-name patterns, written once for validation, routes and the OpenAPI document."""

from __future__ import annotations

# Bare patterns (no anchors): callers fullmatch them, embed them in a route, or anchor them for
# JSON Schema. `$` is never the anchor in Python: it would let a final "\n" in.
ID = r"[A-Za-z0-9_.:@-]{1,128}"
ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


def anchored(pattern: str) -> str:
    """The pattern as a JSON Schema ``pattern`` (ECMAScript, unanchored by default)."""
    return f"^{pattern}$"
