"""How the bridge asks for a sandbox: per-session options, checked against the server's caps,
turned into the ``kernel_provisioner`` stanza that AsyncKernelManager hands to ``icpy-sandbox``."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import ForbiddenError
from .memory import host_report
from .options import LIMITS, SessionSandbox
from .probe import TIER_LETTER, TIERS, choose_tier, probe
from .quota import enforcement
from .view import ETC, SYSTEM
from .workspace import workspace_for

PROVISIONER = "icpy-sandbox"


def disk_quota_enforcement(quota: int) -> dict[str, Any]:
    """The session report's enforcement (quota.py), plus what a host-wide view adds: the watcher
    stops every process of the kernel past the quota, so it is no hard limit on writes."""
    return {**enforcement(quota), "file_size_capped_at_quota": quota > 0, "hard_limit": False}


class SandboxPolicy:
    """The server's side: caps, workspaces root, and the provisioner stanza for a session."""

    def __init__(self, settings: Settings) -> None:
        if settings.sandbox_tier not in ("auto", *TIERS):
            raise ValueError(f"--sandbox-tier {settings.sandbox_tier!r}: expected auto, {', '.join(TIERS)}")
        self.settings = settings
        self._made_root = not settings.workspace_root
        self.root = Path(settings.workspace_root or tempfile.mkdtemp(prefix="icpy-workspaces-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # kernels under other uids must reach their own workspace

    @property
    def enabled(self) -> bool:
        return self.settings.sandbox != "off"

    def check(self, options: SessionSandbox) -> None:
        """Refuse what the server does not allow (before any kernel starts)."""
        if not options.sandbox and self.enabled and not self.settings.allow_unsandboxed:
            raise ForbiddenError("config.sandbox=false needs a server started with --allow-unsandboxed",
                                 field="config.sandbox")
        if options.network and not self.settings.allow_network:
            raise ForbiddenError("config.network=true needs a server started with --allow-network",
                                 field="config.network")

    def limits(self, options: SessionSandbox | None = None) -> dict[str, int]:
        caps = {name: int(getattr(self.settings, attr)) for name, attr in LIMITS.items()}
        asked = options.limits if options else {}
        # A cap of 0 is "no limit": a session may still ask for one.
        return {name: min(asked.get(name, cap), cap) if cap > 0 else asked.get(name, 0)
                for name, cap in caps.items()}

    def workspace(self, session_id: str) -> Path:
        return workspace_for(self.root, session_id)

    def provisioner(self, session_id: str, options: SessionSandbox) -> dict[str, Any] | None:
        """The kernel_provisioner stanza, or None for a plain (unsandboxed) local kernel."""
        self.check(options)
        if not self.enabled or not options.sandbox:
            return None
        config = {
            **self.limits(options),
            "tier": self.settings.sandbox_tier,
            "require_isolation": self.settings.sandbox == "require",
            "network": options.network,
            "workspace": str(self.workspace(session_id)),
            "keep_workspace": self.settings.keep_workspaces,
            "uid_range": self.settings.sandbox_uid_range,
            "env_allow": list(self.settings.kernel_env_allow),
            "ro_paths": list(self.settings.sandbox_ro_path),
            "hide_paths": self.secrets(),
        }
        return {"provisioner_name": PROVISIONER, "config": config}

    def secrets(self) -> list[str]:
        """Directories of the server's own that no kernel may see even if the view includes
        a parent of them (e.g. ``--db`` inside the venv): the history database's."""
        from ..history.store import default_path  # here: `icpy exec` never needs sqlite3

        db = self.settings.db
        if db == ":memory:":
            return []
        return [os.path.dirname(os.path.realpath(db or default_path()))]

    async def describe(self) -> dict[str, Any]:
        """For ``GET /api/health`` and ``icpy doctor``: what a new session would get."""
        if not self.enabled:
            return {"mode": "off", "tier": None, "enforced": False, "limits": {}}
        caps = await probe()
        wanted = self.settings.sandbox_tier
        try:
            tier, tier_error = choose_tier(caps, wanted), None
        except ValueError as exc:  # a forced tier this machine lacks: kernels will be refused
            tier, tier_error = wanted, str(exc)
        return {
            "mode": self.settings.sandbox,
            "tier": tier,
            "tier_letter": TIER_LETTER[tier],
            "tier_requested": wanted,
            "tier_error": tier_error,
            "available_tiers": caps.tiers,
            "network_isolation": caps.network_isolation(tier),
            "network_default": "isolated",
            "dedicated_uid": caps.root,
            "cgroup_controllers": caps.cgroup_controllers,
            "memory": host_report(caps.cgroup_controllers),
            "landlock_abi": caps.landlock_abi,
            "seccomp": caps.seccomp,
            "seccomp_error": caps.seccomp_error,
            "bwrap_error": caps.bwrap_error,
            "limits": self.limits(),
            "disk_quota_enforcement": disk_quota_enforcement(self.limits()["disk_quota"]),
            "workspace_root": str(self.root),
            "view": {"system": list(SYSTEM), "etc": list(ETC), "extra": list(self.settings.sandbox_ro_path)},
        }

    def close(self) -> None:
        if self._made_root and not self.settings.keep_workspaces:
            shutil.rmtree(self.root, ignore_errors=True)
