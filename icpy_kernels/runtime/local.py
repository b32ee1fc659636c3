"""The session manager for kernels on this machine, wired up: kernelspecs, languages, sandbox policy.

Shared by the server and the CLI's embedded backend; it lives outside ``server/`` so that
``icpy exec`` does not import tornado's web stack, the history store and the handlers.
"""

from __future__ import annotations

from ..config import Settings
from ..provisioning.bridge import SandboxPolicy
from .kernels import LocalKernelProvider, kernel_environment
from .kernelspecs import kernel_spec_manager
from .languages import LanguageTable
from .manager import SessionManager


def make_manager(settings: Settings) -> SessionManager:
    ksm = kernel_spec_manager()
    languages = LanguageTable(ksm, settings.language_overrides)
    env = kernel_environment(extra_allow=tuple(settings.kernel_env_allow))
    policy = SandboxPolicy(settings)  # sandbox=off still validates config.sandbox/network
    return SessionManager(settings, languages, LocalKernelProvider(ksm, env, policy))
