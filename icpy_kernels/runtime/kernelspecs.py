"""Finding and installing kernelspecs: the bundled ones plus whatever Jupyter has installed."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from importlib.resources import files
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_core.paths import jupyter_path

BUNDLED_KERNELS = ("icpy-bash", "icpy-javascript")


def bundled_kernelspecs_dir() -> Path:
    """The directory holding our kernel.json folders (``kernelspecs/`` in the repo)."""
    return Path(str(files("icpy_kernels.kernelspecs")))


def kernel_spec_manager() -> KernelSpecManager:
    """A KernelSpecManager that sees every installed spec and, behind them, the bundled ones.

    Installed specs win (a user may have customised one); the bundled ones make the bridge
    work straight from a checkout, before ``icpy kernels install``.
    """
    return KernelSpecManager(kernel_dirs=[*default_kernel_dirs(), str(bundled_kernelspecs_dir())])


def default_kernel_dirs() -> list[str]:
    """KernelSpecManager's default ``kernel_dirs``, without importing IPython for them.

    Its default asks ``IPython.paths`` for the legacy ``~/.ipython/kernels``, and importing
    IPython costs every ``icpy exec`` 40-90 ms; ``IPYTHONDIR`` or ``~/.ipython`` is the same
    answer in every ordinary setup.
    """
    ipython_dir = os.environ.get("IPYTHONDIR") or os.path.join("~", ".ipython")
    return [*jupyter_path("kernels"), os.path.join(os.path.expanduser(ipython_dir), "kernels")]


SANDBOX_METADATA = {"kernel_provisioner": {"provisioner_name": "icpy-sandbox", "config": {}}}


def install_kernelspecs(
    *, user: bool = False, prefix: str | None = None, sandbox: bool = False
) -> list[tuple[str, str]]:
    """Install python3 (ipykernel) and our bundled specs; return ``(name, path)`` pairs.

    ``argv[0]`` is pinned to this interpreter so the installed specs keep working from any
    front end, whatever ``python`` is on its PATH. With ``sandbox`` the specs name the
    ``icpy-sandbox`` provisioner, so any Jupyter front end (JupyterLab, nbclient...) launches
    these kernels sandboxed too.
    """
    from ipykernel.kernelspec import write_kernel_spec

    ksm = KernelSpecManager()
    installed = []
    with tempfile.TemporaryDirectory() as tmp:
        py_dir = write_kernel_spec(Path(tmp) / "python3")
        if sandbox:
            _add_metadata(Path(py_dir) / "kernel.json", SANDBOX_METADATA)
        installed.append(("python3", ksm.install_kernel_spec(py_dir, "python3", user=user, prefix=prefix)))
        for name in BUNDLED_KERNELS:
            src = bundled_kernelspecs_dir() / name
            staged = Path(tmp) / name
            shutil.copytree(src, staged)
            spec_file = staged / "kernel.json"
            spec = json.loads(spec_file.read_text())
            if spec["argv"] and spec["argv"][0] == "python":
                spec["argv"][0] = sys.executable
            if sandbox:
                spec.setdefault("metadata", {}).update(SANDBOX_METADATA)
            spec_file.write_text(json.dumps(spec, indent=1))
            installed.append((name, ksm.install_kernel_spec(str(staged), name, user=user, prefix=prefix)))
    return installed


def _add_metadata(spec_file: Path, metadata: dict[str, object]) -> None:
    spec = json.loads(spec_file.read_text())
    spec.setdefault("metadata", {}).update(metadata)
    spec_file.write_text(json.dumps(spec, indent=1))
