"""The one settings object, read from CLI flags and ``ICPY_*`` environment variables."""

from __future__ import annotations

import argparse
import os
import secrets
from dataclasses import dataclass, field, fields
from typing import Any

from .provisioning import defaults


def _opt(default: Any, help: str) -> Any:
    """A setting: its default, its ``--help`` text; the flag and env var follow from its name."""
    return field(default=default, metadata={"help": help})


def _list(help: str) -> Any:
    return field(default_factory=list, metadata={"help": help})


@dataclass
class Settings:
    host: str = _opt("127.0.0.1", "address to bind (loopback by default)")
    port: int = _opt(8765, "port to listen on (0 picks a free one)")
    token: str = _opt("", "access token; generated and printed when empty")
    allow_origin: list[str] = _list(
        "extra allowed WebSocket/browser origins (default: same host only); '*' allows any"
    )
    default_timeout: float = _opt(30.0, "execution timeout when a request sets none (seconds)")
    max_timeout: float = _opt(600.0, "the largest timeout a request may ask for (seconds)")
    max_output_size: int = _opt(10 * 1024 * 1024, "default and cap of output bytes kept per execution")
    session_idle_timeout: float = _opt(3600.0, "shut down named sessions idle this long (seconds, 0 = never)")
    max_message_size: int = _opt(10 * 1024 * 1024, "largest WebSocket frame / HTTP body accepted (bytes)")
    max_sessions: int = _opt(64, "most kernels alive at once")
    max_connections: int = _opt(256, "most WebSocket connections at once")
    interrupt_grace: float = _opt(2.0, "after a timeout's interrupt, restart the kernel if still busy this long")
    keepalive_interval: float = _opt(5.0, "send a keepalive after this many seconds without output")
    ws_ping_interval: float = _opt(30.0, "WebSocket protocol ping interval, to detect dead peers (seconds)")
    send_queue_size: int = _opt(
        1000, "broadcast/attached messages a client may have waiting; past it, it is dropped from them"
    )
    max_subscriptions_per_connection: int = _opt(
        256, "most topic patterns one connection (or one GET /api/events stream) may subscribe to")
    max_subscriptions: int = _opt(4096, "most topic patterns subscribed on the whole server")
    max_batch_size: int = _opt(100, "most requests in one JSON-RPC batch; a longer one gets one -32600 error")
    db: str = _opt("", "execution history SQLite file; ':memory:' keeps none across restarts "
                       "(default: <jupyter data dir>/icpy/history.sqlite3)")
    history_max_rows: int = _opt(100_000, "executions kept in the history (0 = no limit)")
    history_max_age: float = _opt(0.0, "drop history entries older than this (seconds, 0 = keep)")
    language: list[str] = _list(
        "extra language mapping NAME=KERNELSPEC (repeatable), e.g. ruby=ruby3"
    )
    header_timeout: float = _opt(10.0, "seconds a client has to send a request's headers (also the "
                                       "idle limit of a kept-alive HTTP connection; 0 = tornado's hour)")
    body_timeout: float = _opt(60.0, "seconds a client has to send an HTTP request body (0 = no limit)")
    max_pending_connections: int = _opt(
        64, "connections that have not shown the token yet; past it the oldest is closed (0 = no cap)"
    )
    fd_reserve: int = _opt(256, "file descriptors kept for kernels: new connections are closed at once "
                                "past RLIMIT_NOFILE minus this (0 = no reserve)")
    # -- sandbox (docs/security.md) --
    sandbox: str = _opt("auto", "auto: strongest sandbox tier here; require: refuse kernels without "
                                "filesystem+network isolation (tier A/B); off: plain local kernels")
    sandbox_tier: str = _opt("auto", "sandbox tier: auto (strongest here), bwrap (A), landlock (B) or "
                                     "rlimits (C); a tier not available here refuses kernels")
    workspace_root: str = _opt("", "where session workspaces are made (default: a fresh temp dir)")
    keep_workspaces: bool = _opt(False, "keep a session's workspace after it shuts down")
    allow_network: bool = _opt(False, "let a session ask for network access (config.network)")
    allow_unsandboxed: bool = _opt(False, "let a session ask to run without the sandbox (config.sandbox=false)")
    memory_limit: int = _opt(defaults.MEMORY, "bytes of memory per kernel (cap of config.limits.memory)")
    process_limit: int = _opt(defaults.PROCESSES, "processes/threads per kernel (cap of config.limits.processes)")
    cpu_limit: int = _opt(defaults.CPU, "CPU per kernel in millicores, 1000 = one core, where the cpu cgroup is "
                                "writable (0 = no limit; cap of config.limits.cpu)")
    file_size_limit: int = _opt(defaults.FILE_SIZE, "largest file a kernel may write (bytes)")
    open_files_limit: int = _opt(defaults.OPEN_FILES, "open files per kernel process")
    disk_quota: int = _opt(defaults.DISK_QUOTA, "bytes a session workspace may hold: watched while code runs, its processes stopped past it")
    sandbox_uid_range: str = _opt(defaults.UID_RANGE, "uids leased to kernels when the server runs as root")
    kernel_env_allow: list[str] = _list("extra environment variable names (or PREFIX*) passed to kernels")
    sandbox_ro_path: list[str] = _list(
        "extra host path a sandboxed kernel may read (repeatable); the view is an allow-list"
    )
    max_sessions_per_connection: int = _opt(
        16, "most sessions one client may have: a WebSocket connection, or REST calls from one address")
    max_total_memory: int = _opt(
        0, "sum of the memory limits of all sessions (bytes); 0 = 3/4 of this machine's RAM, -1 = no limit")
    max_queued: int = _opt(256, "executions one session may hold, running and waiting (0 = no limit)")
    max_queued_bytes: int = _opt(64 << 20, "bytes of code one session may hold waiting to run (0 = no limit)")
    max_outbox_bytes: int = _opt(
        128 << 20, "bytes a WebSocket client may have waiting to be written; past half, its frames are "
                   "no longer read; past all, it is disconnected (1008)")

    def __post_init__(self) -> None:
        self.token_generated = False
        if not self.token:
            self.token = secrets.token_urlsafe(32)
            self.token_generated = True

    @property
    def language_overrides(self) -> dict[str, str]:
        pairs = (item.split("=", 1) for item in self.language if "=" in item)
        return {name.strip().lower(): spec.strip() for name, spec in pairs}


# What ``icpy doctor`` reports on: the settings that shape a kernel's sandbox.
SANDBOX_SETTINGS = (
    "sandbox", "sandbox_tier", "allow_network", "memory_limit", "process_limit", "cpu_limit",
    "file_size_limit", "open_files_limit", "disk_quota", "sandbox_uid_range", "sandbox_ro_path",
    "workspace_root",
)


def env_name(name: str) -> str:
    return "ICPY_" + name.upper()


def add_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    """Declare one ``--flag`` per setting (or per setting in ``names``); ``--help`` names the
    env var and default."""
    for f in fields(Settings):
        if names is not None and f.name not in names:
            continue
        flag = "--" + f.name.replace("_", "-")
        env = env_name(f.name)
        if str(f.type) == "list[str]":
            parser.add_argument(flag, action="append", default=None, metavar="VALUE",
                                help=f"{f.metadata['help']} [env {env}, comma-separated]")
            continue
        if str(f.type) == "bool":
            parser.add_argument(flag, action="store_const", const=True, default=None,
                                help=f"{f.metadata['help']} [env {env}=1]")
            continue
        kind = {"int": int, "float": float}.get(str(f.type), str)
        parser.add_argument(flag, type=kind, default=None,
                            help=f"{f.metadata['help']} [env {env}; default {f.default!r}]")


def load_settings(args: argparse.Namespace | None = None, env: dict[str, str] | None = None,
                  defaults: dict[str, Any] | None = None) -> Settings:
    """Flags win over environment variables, which win over defaults: ``defaults`` (a command's
    own, e.g. the CLI's unsandboxed runs), then the fields'."""
    env = os.environ if env is None else env
    values: dict[str, Any] = dict(defaults or {})
    for f in fields(Settings):
        cli = getattr(args, f.name, None) if args is not None else None
        raw = env.get(env_name(f.name))
        if str(f.type) == "list[str]":
            if cli is not None:
                values[f.name] = list(cli)
            elif raw:
                values[f.name] = [part.strip() for part in raw.split(",") if part.strip()]
            continue
        if cli is not None:
            values[f.name] = cli
        elif raw is not None and raw != "" and str(f.type) == "bool":
            values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
        elif raw is not None and raw != "":
            kind = {"int": int, "float": float}.get(str(f.type), str)
            try:
                values[f.name] = kind(raw)
            except ValueError as exc:
                raise SystemExit(f"{env_name(f.name)}={raw!r}: {exc}") from exc
    return Settings(**values)
