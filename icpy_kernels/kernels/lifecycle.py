"""Shutdown in order for our kernels: the control thread finishes before the app tears down."""

from __future__ import annotations

import atexit
import os
import signal
import threading
from typing import Any

# How long the main thread waits at exit for the control thread to finish a shutdown_request
# (its flushes take milliseconds; the bound only keeps a wedged thread from holding exit).
CONTROL_SETTLE_TIMEOUT = 2.0


class OrderlyShutdown:
    """Mixed in first by our ipykernel ``Kernel`` subclasses.

    ipykernel's ``shutdown_request`` (on the control thread) schedules the main loop's stop,
    then its ``process_control`` still flushes stdout/stderr and publishes ``idle`` through
    the IOPub thread. The main thread, meanwhile, leaves its loop and at exit runs
    ``IPKernelApp.close``, which stops that IOPub thread and joins the control thread: when it
    wins the race (about one shutdown in three for our kernels), the control thread waits
    ``flush_timeout`` (10 s) for a flush that can no longer happen, and jupyter_client
    SIGTERMs the kernel after 2.5 s. So the main thread, at exit, first waits for the
    control thread to finish the shutdown (this atexit hook runs before ``close``, which
    the app registered earlier).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shutdown_requested = False
        self._control_settled = threading.Event()
        atexit.register(self._wait_for_control)

    def start(self) -> None:
        super().start()  # type: ignore[misc]
        # The kernel's child runs in a session of its own, so a SIGTERM aimed at the kernel
        # (jupyter_client's escalation) would miss it: kill it first, then die of SIGTERM.
        self.io_loop.asyncio_loop.add_signal_handler(signal.SIGTERM, self._on_sigterm)  # type: ignore[attr-defined]

    def kill_children_now(self) -> None:
        """Kill the kernel's child processes at once, without waiting (a signal handler)."""

    def _on_sigterm(self) -> None:
        try:
            self.kill_children_now()
        finally:
            self.io_loop.asyncio_loop.remove_signal_handler(signal.SIGTERM)  # type: ignore[attr-defined]
            os.kill(os.getpid(), signal.SIGTERM)

    async def shutdown_request(self, stream: Any, ident: Any, parent: Any) -> None:
        self._shutdown_requested = True
        await super().shutdown_request(stream, ident, parent)  # type: ignore[misc]

    async def process_control(self, msg: Any) -> None:
        try:
            await super().process_control(msg)  # type: ignore[misc]
        finally:
            if self._shutdown_requested:
                self._control_settled.set()

    def _wait_for_control(self) -> None:
        if self._shutdown_requested:
            self._control_settled.wait(CONTROL_SETTLE_TIMEOUT)
