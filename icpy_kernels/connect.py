"""Where ``icpy exec`` / ``icpy run`` send their code: a server (``--url``) or a local backend.

Apart from backends.py and remote.py so that neither imports the other (remote.py builds on
backends.py's ``Backend``), and so that a local run never imports the WebSocket client.
"""

from __future__ import annotations

from .backends import Backend, LocalBackend


async def open_backend(url: str | None, token: str | None) -> Backend:
    """The remote backend when a URL is given (connected and welcomed), else a local one."""
    if url:
        from .remote import RemoteBackend

        return await RemoteBackend.connect(url, token)
    return LocalBackend()
