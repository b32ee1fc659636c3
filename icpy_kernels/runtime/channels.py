"""The kernel client sessions use: jupyter_client's, with sends that keep pyzmq's wake-ups.

jupyter_client's ``Session.send`` writes on a raw shadow of an asyncio socket. A raw send
processes the socket's pending libzmq commands, which drains the edge-triggered ``ZMQ_FD``;
pyzmq never learns of that send, so a message that arrived just before it stays unread while
our reader's ``poll`` waits for an edge that is already gone. Under load this showed as an
execution that saw ``status: idle`` but never its ``execute_reply`` (the reply sat in the
socket until the next send). Sending through the asyncio socket itself lets pyzmq re-check
``ZMQ_EVENTS`` after the send and wake the reader (``tests/unit/test_channels.py`` shows both).
"""

from __future__ import annotations

import logging
from typing import Any

import zmq.asyncio
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from traitlets import Type

log = logging.getLogger(__name__)


class _AsyncSend:
    """What ``Session.send`` writes to: the asyncio socket's own ``send_multipart``.

    Not a ``zmq.asyncio.Socket``, so ``Session.send`` does not swap in a raw shadow; everything
    else it does (serialising, buffers, version adaptation) is unchanged.
    """

    def __init__(self, socket: zmq.asyncio.Socket) -> None:
        self.socket = socket

    def send_multipart(self, frames: list[Any], copy: bool = True, **kwargs: Any) -> None:
        # Done at once unless the socket is at its high-water mark; then pyzmq sends it, in
        # order, when the socket is writable again. Nobody awaits it: failures are logged.
        future = self.socket.send_multipart(frames, copy=copy, **kwargs)
        future.add_done_callback(_log_failure)


def _log_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("sending to the kernel failed: %s", future.exception())


class Channel(AsyncZMQSocketChannel):
    def send(self, msg: dict[str, Any]) -> None:
        assert self.socket is not None
        self.session.send(_AsyncSend(self.socket), msg)


class KernelClient(AsyncKernelClient):
    """``AsyncKernelClient`` whose request channels send through pyzmq's asyncio API."""

    shell_channel_class = Type(Channel)  # type: ignore[assignment]
    stdin_channel_class = Type(Channel)  # type: ignore[assignment]
    control_channel_class = Type(Channel)  # type: ignore[assignment]
