"""Where kernels run: the small contract sessions use, and the local-process implementation.

A session only ever talks to a ``KernelHandle`` (lifecycle) and the ``AsyncKernelClient`` it
hands out (messages). A warm pool or a remote gateway is another ``KernelProvider``; the
session manager does not change.
"""

from __future__ import annotations

import abc
import os
import sys
import uuid
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from .. import kernelenv
from ..errors import KernelStartError, SandboxUnavailable
from ..provisioning.bridge import SandboxPolicy
from ..provisioning.options import SessionSandbox
from ..provisioning.sandbox import SandboxError
from .channels import KernelClient


def kernel_environment(source: dict[str, str] | None = None, extra_allow: tuple[str, ...] = ()) -> dict[str, str]:
    """An unsandboxed kernel's environment: ``kernelenv.LOCAL`` plus ``extra_allow`` of ``source``."""
    env = kernelenv.select(dict(os.environ if source is None else source), kernelenv.LOCAL + extra_allow)
    # The server's interpreter directory first, so "python" in a kernelspec is this venv's.
    env["PATH"] = os.pathsep.join(
        [os.path.dirname(sys.executable), *filter(None, [env.get("PATH")])]
    )
    return env


class KernelHandle(abc.ABC):
    """One running kernel. Called by ``Session`` only."""

    kernel_name: str

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    def client(self) -> AsyncKernelClient:
        """A fresh, unstarted client for the kernel's current connection info."""

    @abc.abstractmethod
    async def is_alive(self) -> bool: ...

    @abc.abstractmethod
    async def interrupt(self) -> None: ...

    @abc.abstractmethod
    async def restart(self) -> None:
        """Kill and start again (state is lost). Clients must be recreated afterwards."""

    @abc.abstractmethod
    async def shutdown(self) -> None:
        """Stop the kernel for good; must not raise if it is already gone."""

    # Sandboxing hooks (docs/security.md); a handle without a sandbox keeps these defaults.
    workspace: str | None = None

    def sandbox_report(self) -> dict[str, Any] | None:
        """What the kernel's sandbox enforces (tier, uid, limits), once it has started."""
        return None

    async def after_execution(self) -> dict[str, Any] | None:
        """An ``error`` update for the execution that just ended (e.g. disk quota), if any."""
        return None


class KernelProvider(abc.ABC):
    @abc.abstractmethod
    def create(self, kernel_name: str, *, session_id: str | None = None,
               sandbox: SessionSandbox | None = None) -> KernelHandle:
        """A handle for a new kernel of that spec (not started yet), sandboxed as asked."""

    def memory_limit(self, sandbox: SessionSandbox | None = None) -> int:
        """The memory limit (bytes) a kernel created with these options has; 0 = none."""
        return 0

    def close(self) -> None:
        """Release what the provider holds (e.g. the workspace root) once every kernel is gone."""
        return None  # a provider that holds nothing has nothing to release


class LocalKernel(KernelHandle):
    """A kernel process on this machine, through jupyter_client's AsyncKernelManager."""

    _disk_quota = 0

    def __init__(self, kernel_name: str, ksm: KernelSpecManager, env: dict[str, str],
                 provisioner: dict[str, Any] | None = None) -> None:
        self.kernel_name = kernel_name
        self._env = env
        self.km = AsyncKernelManager(kernel_name=kernel_name, kernel_spec_manager=ksm,
                                     client_factory=KernelClient)
        if provisioner is not None:
            # The same seam a kernel.json uses: AsyncKernelManager builds the provisioner
            # named in the spec's metadata. This km's spec object is its own copy.
            self.km.kernel_spec.metadata["kernel_provisioner"] = provisioner
            self.workspace = provisioner["config"].get("workspace")
            self._disk_quota = int(provisioner["config"].get("disk_quota") or 0)

    def sandbox_report(self) -> dict[str, Any] | None:
        return getattr(self.km.provisioner, "report", None) or None

    async def after_execution(self) -> dict[str, Any] | None:
        provisioner = self.km.provisioner
        usage = getattr(provisioner, "workspace_usage", None)
        if usage is None or not self._disk_quota:
            return None
        # The quota watcher may have stopped the kernel (in this execution, or a detached writer
        # since the last one). Once the files are gone (an execution that cleaned up) there is
        # nothing to fail: the restart was already announced as session_restarted.
        stopped = provisioner.take_quota_stop() if hasattr(provisioner, "take_quota_stop") else None
        used = await usage()
        if used <= self._disk_quota:
            return None
        if stopped is not None:
            return {"kind": "error", "ename": "DiskQuotaExceeded", "traceback": [],
                    "evalue": f"Processes stopped: disk quota exceeded (the workspace reached {stopped} "
                              f"bytes, over its quota of {self._disk_quota}); the kernel was restarted "
                              "and its state is lost; delete files before running more code"}
        return {"kind": "error", "ename": "DiskQuotaExceeded", "traceback": [],
                "evalue": f"The session workspace holds {used} bytes, over its quota of "
                          f"{self._disk_quota}; delete files before running more code"}

    async def start(self) -> None:
        try:
            await self.km.start_kernel(env=dict(self._env))
        except SandboxError as exc:
            await self.shutdown()
            raise SandboxUnavailable(str(exc)) from exc
        except Exception as exc:  # any failure to launch is the same thing to a client
            await self.shutdown()
            raise KernelStartError(f"Kernel {self.kernel_name!r} failed to start: {exc}") from exc

    def client(self) -> AsyncKernelClient:
        return self.km.client()

    async def is_alive(self) -> bool:
        return await self.km.is_alive()

    async def interrupt(self) -> None:
        await self.km.interrupt_kernel()

    async def restart(self) -> None:
        await self.km.restart_kernel(now=True)

    async def shutdown(self) -> None:
        if self.km.has_kernel:
            try:
                await self.km.shutdown_kernel(now=False)
            except Exception:
                # A kernel that will not stop politely is killed; never leave a process.
                await self.km.shutdown_kernel(now=True)


class LocalKernelProvider(KernelProvider):
    def __init__(self, ksm: KernelSpecManager, env: dict[str, str] | None = None,
                 policy: SandboxPolicy | None = None) -> None:
        self.ksm = ksm
        self.env = env if env is not None else kernel_environment()
        self.policy = policy

    def create(self, kernel_name: str, *, session_id: str | None = None,
               sandbox: SessionSandbox | None = None) -> KernelHandle:
        provisioner = None
        if self.policy is not None:
            provisioner = self.policy.provisioner(session_id or f"k-{uuid.uuid4().hex[:12]}",
                                                  sandbox or SessionSandbox())
        return LocalKernel(kernel_name, self.ksm, self.env, provisioner)

    def memory_limit(self, sandbox: SessionSandbox | None = None) -> int:
        options = sandbox or SessionSandbox()
        if self.policy is None or not self.policy.enabled or not options.sandbox:
            return 0  # a plain local kernel: nothing limits it
        return self.policy.limits(options)["memory"]

    def close(self) -> None:
        if self.policy is not None:
            self.policy.close()
