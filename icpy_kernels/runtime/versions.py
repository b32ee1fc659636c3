"""Each kernel's language version (what its ``kernel_info`` reports as ``language_info.version``),
known before any kernel of it has run: read from the kernelspec or asked of the interpreter once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys

from jupyter_client.kernelspec import KernelSpec

PROBE_TIMEOUT = 10.0  # seconds for one interpreter to print its version

# The command each kernel itself runs to learn its version (ipykernel: sys.version; the node
# kernel: `node --version` without the v; the bash kernel: $BASH_VERSION), so both sources agree.
PYTHON_PROBE = "import platform; print(platform.python_version())"


def probe_command(spec: KernelSpec) -> list[str] | None:
    """How to ask this kernelspec's interpreter its version; None when we do not know how."""
    if spec.language == "python" and spec.argv:
        python = spec.argv[0]
        # jupyter_client runs a spec's bare "python" as the server's own interpreter.
        if python in ("python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])):
            python = sys.executable
        return [python, "-c", PYTHON_PROBE]
    if spec.language == "javascript":
        node = os.environ.get("ICPY_NODE") or shutil.which("node")
        return [node, "--version"] if node else None
    if spec.language == "bash":
        return ["bash", "-c", "echo $BASH_VERSION"]
    return None


def spec_version(spec: KernelSpec) -> str | None:
    """``metadata.language_info.version`` of a kernelspec that declares it."""
    info = (spec.metadata or {}).get("language_info")
    version = info.get("version") if isinstance(info, dict) else None
    return str(version) if version else None


async def probe(command: list[str]) -> str | None:
    """The first line the command prints (a leading ``v`` dropped), None if it fails; never
    blocks the event loop, and a hung interpreter is killed after ``PROBE_TIMEOUT``."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
    except OSError:
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return None
    line = out.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0 or not line:
        return None
    return line[0].strip().removeprefix("v") or None


class LanguageVersions:
    """kernel name -> version, each found once (concurrent askers share the one probe)."""

    def __init__(self) -> None:
        self._found: dict[str, asyncio.Future[str | None]] = {}
        self._reported: set[str] = set()  # kernels whose own kernel_info gave the version

    def reported(self, kernel_name: str) -> bool:
        """Whether a running kernel has answered (nothing left to ask one)."""
        return kernel_name in self._reported

    def known(self, kernel_name: str, version: str) -> None:
        """A running kernel's own answer wins over the probe's."""
        future = asyncio.get_running_loop().create_future()
        future.set_result(version)
        self._found[kernel_name] = future
        self._reported.add(kernel_name)

    async def get(self, kernel_name: str, spec: KernelSpec) -> str | None:
        if kernel_name not in self._found:
            self._found[kernel_name] = asyncio.ensure_future(self._find(spec))
        return await asyncio.shield(self._found[kernel_name])

    async def _find(self, spec: KernelSpec) -> str | None:
        version = spec_version(spec)
        if version is None and (command := probe_command(spec)) is not None:
            version = await probe(command)
        return version
