"""Where the CLI's code runs: an embedded session manager, or a server over the WebSocket.

Both go through the same ``Service`` (the local one in-process, the remote one behind
``/ws``), so ``icpy exec`` / ``icpy run`` never have an execution path of their own.
"""

from __future__ import annotations

import abc
import math
import os
import uuid
from typing import Any

from .config import Settings, load_settings
from .errors import IcpyError
from .runtime.execution import Listener
from .runtime.kernels import KernelHandle, KernelProvider

# Exit statuses shared by ``icpy exec`` and ``icpy run``.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CANNOT_RUN = 2
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130

# "No limit": the protocol needs a finite positive timeout, so use a very long one.
UNLIMITED = 10 * 24 * 3600.0


class CannotRun(Exception):
    """The code never ran: bad input, unknown language, no server, no kernel (exit status 2)."""


def exit_status(result: dict[str, Any]) -> int:
    """An ``execution_result`` as a process exit status (a kernel's own nonzero code wins)."""
    status = result.get("status")
    if status == "timeout":
        return EXIT_TIMEOUT
    if status == "interrupted":
        return EXIT_INTERRUPTED
    code = result.get("exit_code")
    if status == "completed":
        return code if isinstance(code, int) and 0 <= code < 256 else EXIT_OK
    return code if isinstance(code, int) and 0 < code < 256 else EXIT_FAILED


def timeout_value(seconds: float | None) -> float | None:
    """``--timeout`` as sent: None keeps the default, 0 (or less) means no limit."""
    if seconds is None:
        return None
    if seconds <= 0 or not math.isfinite(seconds):
        return UNLIMITED
    return float(seconds)


def parse_env(items: list[str] | None, environ: dict[str, str]) -> dict[str, str]:
    """``-e NAME`` (the value comes from this environment) or ``-e NAME=VALUE``, for the kernel."""
    env: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep:
            if name not in environ:
                raise CannotRun(f"-e {name}: not set in this environment")
            value = environ[name]
        env[name] = value
    return env


def request_params(code: str, language: str, args: Any) -> dict[str, Any]:
    """The ``execute`` fields ``exec`` and ``run`` share: session, timeout, environment."""
    params: dict[str, Any] = {"code": code, "language": language}
    if args.session:
        params["session_id"] = args.session
    config: dict[str, Any] = {}
    timeout = timeout_value(args.timeout)
    if timeout is not None:
        config["timeout"] = timeout
    if args.env_vars:
        config["environment"] = args.env_vars
    if config:
        params["config"] = config
    return params


class Backend(abc.ABC):
    """Runs executions in one place; ``close`` must always be awaited (it stops kernels)."""

    languages: list[str]

    @abc.abstractmethod
    async def execute(self, params: dict[str, Any], listener: Listener) -> dict[str, Any]:
        """Run ``params`` (an ``execute`` message's fields) and return its ``execution_result``.

        ``listener`` is told every event as it happens, as a WebSocket client would see it.
        Raises ``IcpyError`` (or ``CannotRun``) when the code could not run at all.
        """

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def interrupt(self) -> bool:
        """Interrupt the running execution, keeping the session (Ctrl-C); False if unsupported."""
        return False

    async def __aenter__(self) -> Backend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _IpcKernelProvider:
    """Kernels on this machine talking over Unix sockets rather than loopback TCP.

    Only the CLI's own kernels: nothing else can reach them, and ipykernel stops printing
    its "running over TCP without encryption" warning into the user's terminal.
    """

    def __init__(self, inner: KernelProvider) -> None:
        self.inner = inner

    def create(self, kernel_name: str, **options: Any) -> KernelHandle:
        from jupyter_core.paths import jupyter_runtime_dir
        from jupyter_core.utils import ensure_dir_exists

        handle = self.inner.create(kernel_name, **options)
        km = getattr(handle, "km", None)
        # A kernel with its own provisioner (the sandbox) chooses its transport itself.
        if km is not None and os.name == "posix" and "kernel_provisioner" not in km.kernel_spec.metadata:
            runtime = jupyter_runtime_dir()
            ensure_dir_exists(runtime, 0o700)
            km.transport = "ipc"
            # Set before start: the default would put the sockets in the current directory.
            km.ip = os.path.join(runtime, f"icpy-cli-{uuid.uuid4().hex[:12]}-ipc")
        return handle

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # anything else the manager asks of its provider


class LocalBackend(Backend):
    """An in-process session manager and ``Service``; kernels are children of the CLI."""

    CONNECTION_ID = "cli"

    def __init__(self, settings: Settings | None = None) -> None:
        from .runtime.local import make_manager
        from .service import Service

        # The CLI runs the user's own code on their own machine, in their own directory, as
        # `python script.py` would: no sandbox unless asked for with ICPY_SANDBOX.
        self.settings = settings or load_settings(None, defaults={"sandbox": "off"})
        # The CLI's user asked for this timeout on their own machine: no server cap applies.
        self.settings.max_timeout = UNLIMITED
        self.manager = make_manager(self.settings)
        self.manager.provider = _IpcKernelProvider(self.manager.provider)  # type: ignore[assignment]
        self.service = Service(self.manager)
        self.languages = self.manager.languages.available()
        self._running: str | None = None

    async def execute(self, params: dict[str, Any], listener: Listener) -> dict[str, Any]:
        request = self.service.parse_execute(params)
        self._running = request.execution_id
        try:
            execution = await self.service.execute(request, self.CONNECTION_ID, [listener])
        finally:
            self._running = None
        assert execution.result is not None
        return execution.result

    async def interrupt(self) -> bool:
        if self._running is None:
            return False
        try:
            reply = await self.service.interrupt(execution_id=self._running)
        except IcpyError:  # not started yet (the kernel is still starting)
            return False
        return bool(reply["interrupted"])

    async def close(self) -> None:
        await self.manager.shutdown()


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, IcpyError):
        return f"{exc.message} [{exc.code}]"
    return str(exc)
