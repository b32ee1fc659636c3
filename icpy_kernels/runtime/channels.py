"""The kernel client sessions use: jupyter_client's, with sends that keep pyzmq's wake-ups.

jupyter_client's ``Session.send`` writes on a raw shadow of an asyncio socket. A raw send
processes the socket's pending libzmq commands, which drains the edge-triggered ``ZMQ_FD``;
pyzmq never learns of that send, so a message that arrived just before it stays unread while
our reader's ``poll`` waits for an edge that is already gone. Under load this showed as an
execution that saw ``status: idle`` but never its ``execute_reply`` (the reply sat in the
socket until the next send). Sending through the asyncio socket itself lets pyzmq re-check
``ZMQ_EVENTS`` after the send and wake the reader (``tests/unit/test_channels.py`` shows both).

``read_forever`` is the reader a session runs per channel; it re-arms its wait every quiet
second, so a wake-up lost some other way costs a second and a log line, never a hang.
"""

from __future__ import annotations

import asyncio
import logging
import queue
from collections.abc import Callable
from typing import Any

import zmq.asyncio
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from traitlets import Type

log = logging.getLogger(__name__)

REARM_INTERVAL = 1.0  # seconds a reader waits before it asks the socket again
WAKEUP_GRACE = 0.01  # after a quiet second, how long a wake-up already on its way may take


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


async def read_forever(channel: AsyncZMQSocketChannel, handle: Callable[[dict[str, Any]], None],
                       label: str) -> None:
    """Give every message of ``channel`` to ``handle``, in order, until cancelled.

    The reader waits for a wake-up, re-checking ``ZMQ_EVENTS`` every quiet second: a message
    whose wake-up was lost (a send we do not control, a pyzmq or libzmq quirk) is read a
    second late and logged, instead of leaving an execution waiting for a reply it already
    has. Only such a message is logged, not one that arrived as the second ran out (output
    printed once a second) or while the loop was busy: its wake-up still comes.
    """
    assert channel.socket is not None
    socket = channel.socket
    woken: asyncio.Future[Any] | None = None
    try:
        while True:
            # No timeout: only a wake-up ends this poll (registering it re-checks the socket).
            woken = asyncio.ensure_future(socket.poll())
            await asyncio.wait({woken}, timeout=REARM_INTERVAL)
            if not woken.done():
                # A message that landed as the second ran out (output printed once a
                # second) still has its wake-up on the way; a lost one never comes.
                await asyncio.wait({woken}, timeout=WAKEUP_GRACE)
            if not woken.done():
                if not socket.get(zmq.EVENTS) & zmq.POLLIN:
                    woken.cancel()  # quiet: the next poll re-checks as it registers
                    continue
                log.warning("%s: a message was read only at the reader's %.0f s re-check"
                            " (a lost ZMQ wake-up)", label, REARM_INTERVAL)
            woken.cancel()
            try:
                msg = await channel.get_msg(timeout=0)
            except queue.Empty:
                continue
            try:
                handle(msg)
            except Exception:  # a malformed message must not stop the reader
                log.exception("%s: failed to handle %s", label, msg.get("msg_type"))
    finally:
        if woken is not None:
            woken.cancel()
