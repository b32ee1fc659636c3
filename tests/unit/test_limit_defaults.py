"""The server's settings and the sandbox provisioner's traits start from the same limits."""

from __future__ import annotations

from icpy_kernels.config import Settings
from icpy_kernels.provisioning.sandbox import SandboxProvisioner

# Setting name -> provisioner trait name, and the value both had before they shared a module.
SHARED = {
    ("memory_limit", "memory"): 1 << 30,
    ("process_limit", "processes"): 256,
    ("cpu_limit", "cpu"): 1000,
    ("file_size_limit", "file_size"): 1 << 30,
    ("open_files_limit", "open_files"): 1024,
    ("disk_quota", "disk_quota"): 1 << 30,
    ("sandbox_uid_range", "uid_range"): "3000000-3000999",
}


def test_settings_and_traits_share_their_limit_defaults():
    settings = Settings(token="t")
    traits = SandboxProvisioner.class_traits()
    for (setting, trait), value in SHARED.items():
        assert getattr(settings, setting) == value, setting
        assert traits[trait].default_value == value, trait
