"""Finding and installing kernelspecs: the bundled ones plus whatever Jupyter has installed."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
from importlib.resources import files
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_core.paths import SYSTEM_JUPYTER_PATH, jupyter_path

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

    # jupyter_client warns of a prefix off the Jupyter path once per spec; install_problems says
    # it once, with what to do about it.
    quiet = logging.getLogger(f"{__name__}.install")
    quiet.setLevel(logging.ERROR)
    ksm = KernelSpecManager(log=quiet)
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



def not_in_effect(installed: list[tuple[str, str]]) -> list[tuple[str, str | None]]:
    """The specs just installed that a Jupyter front end would not use: ``(name, what it
    finds instead)``, None when it finds no spec of that name at all.

    Names are looked up as a front end in this environment does (a plain KernelSpecManager:
    JUPYTER_PATH, then the user and environment data dirs in jupyter_core's order, which in
    a venv puts the venv's own ``python3`` ahead of ``--user``'s), first match wins.
    """
    found = KernelSpecManager().find_kernel_specs()
    return [(name, found.get(name)) for name, path in installed
            if found.get(name) is None or not _same(found[name], path)]


def install_problems(installed: list[tuple[str, str]], *, sandbox: bool) -> list[str]:
    """What to tell the user when an installed spec will not be the one front ends launch
    (empty when all take effect, or when they went to a prefix this environment does not
    search: that is for another environment's front ends to find)."""
    ksm = KernelSpecManager()
    where = os.path.dirname(installed[0][1]) if installed else ""
    if not any(_same(d, where) for d in ksm.kernel_dirs):
        return [f"note: {where} is not on this environment's Jupyter path ({', '.join(ksm.kernel_dirs)}); "
                "only front ends that search it will find these specs"]
    problems = []
    for name, other in not_in_effect(installed):
        if other is None:
            problems.append(f"warning: {name}: Jupyter front ends here do not find it at all")
            continue
        flag = _flag_for(os.path.dirname(other))
        fix = (f"install there instead (icpy kernels install {flag}{' --sandbox' if sandbox else ''})"
               if flag is not None else f"remove {other}, or put {os.path.dirname(where)} first on JUPYTER_PATH")
        effect = " (so it is NOT sandboxed there)" if sandbox else ""
        problems.append(f"warning: {name}: Jupyter front ends here launch {other} instead of the spec "
                        f"just written{effect}; {fix}")
    return problems


def _flag_for(kernels_dir: str) -> str | None:
    """The ``icpy kernels install`` option that writes into ``kernels_dir``, if any."""
    targets = {"--sys-prefix": os.path.join(sys.prefix, "share", "jupyter", "kernels"),
               "--user": KernelSpecManager().user_kernel_dir,
               "(no option: system-wide)": os.path.join(SYSTEM_JUPYTER_PATH[0], "kernels")}
    return next((flag for flag, path in targets.items() if _same(path, kernels_dir)), None)


def _same(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)
