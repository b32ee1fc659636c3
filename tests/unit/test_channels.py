"""A reply that reaches the client's socket just before the client sends must still wake the
reader waiting on that socket. jupyter_client's own send (a raw shadow socket) loses that
wake-up every time; ours must not. Loopback ZMQ only, no kernel."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator

import pytest
import zmq
import zmq.asyncio
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.session import Session

from icpy_kernels.runtime import channels
from icpy_kernels.runtime.channels import REARM_INTERVAL, Channel, read_forever

ROUNDS = 10


@contextlib.contextmanager
def dealer_and_router() -> Iterator[tuple[zmq.asyncio.Socket, zmq.asyncio.Socket]]:
    """A client DEALER connected to a kernel-like ROUTER, on loopback; closed afterwards."""
    ctx = zmq.asyncio.Context()
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(f"tcp://127.0.0.1:{port}")
    try:
        yield dealer, router
    finally:
        dealer.close(linger=0)
        router.close(linger=0)
        ctx.term()


async def woken_readers(channel_class: type) -> int:
    """How many of ROUNDS pending polls woke when a reply landed right before a send."""
    session = Session(key=b"k")
    woken = 0
    with dealer_and_router() as (dealer, router):
        channel = channel_class(dealer, session)
        channel.send(session.msg("kernel_info_request"))
        ident = (await router.recv_multipart())[0]
        for _ in range(ROUNDS):
            reader = asyncio.ensure_future(dealer.poll())
            await asyncio.sleep(0.01)  # the reader waits on the socket; the loop is idle
            await router.send_multipart([ident, b"reply"])
            time.sleep(0.02)  # noqa: ASYNC251 -- on purpose: the reply lands while the loop is busy
            channel.send(session.msg("kernel_info_request"))
            try:
                await asyncio.wait_for(reader, 0.25)
                woken += 1
            except TimeoutError:
                pass
            while await dealer.poll(0):
                await dealer.recv_multipart()
            while await router.poll(20):
                await router.recv_multipart()
    return woken


@pytest.mark.asyncio
async def test_a_send_does_not_swallow_the_wakeup_of_a_reply_that_just_arrived():
    assert await woken_readers(Channel) == ROUNDS


def collector() -> tuple[list[dict], asyncio.Event, Callable[[dict], None]]:
    """What a reader hands messages to: a list, and an event set at each one."""
    seen: list[dict] = []
    got = asyncio.Event()

    def handle(msg: dict) -> None:
        seen.append(msg)
        got.set()

    return seen, got, handle


@pytest.mark.asyncio
async def test_the_reader_recovers_a_lost_wakeup_within_a_second(caplog):
    """Belt and braces: even when a send we do not control swallows the wake-up, the
    session's reader finds the waiting message at its next re-arm and says so."""
    session = Session(key=b"k")
    seen, got, handle = collector()

    with dealer_and_router() as (dealer, router):
        stock = AsyncZMQSocketChannel(dealer, session)
        reader = asyncio.ensure_future(read_forever(stock, handle, "test"))
        try:
            await stock_reply_stranded(stock, session, router)
            started = time.monotonic()
            await asyncio.wait_for(got.wait(), REARM_INTERVAL + 1)
            waited = time.monotonic() - started
            assert [m["msg_type"] for m in seen] == ["kernel_info_reply"]
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    # Lost (as it is nearly every time here): found at the re-arm and logged; else neither.
    assert ("lost ZMQ wake-up" in caplog.text) == (waited > 0.5), (waited, caplog.text)


async def stock_reply_stranded(stock: AsyncZMQSocketChannel, session: Session,
                               router: zmq.asyncio.Socket) -> None:
    """A reply lands, then jupyter_client's raw send swallows its wake-up."""
    stock.send(session.msg("kernel_info_request"))
    ident = (await router.recv_multipart())[0]
    await asyncio.sleep(0.05)
    session.send(router, "kernel_info_reply", {"status": "ok"}, ident=ident)
    time.sleep(0.02)  # noqa: ASYNC251 -- the reply lands while the loop is busy
    stock.send(session.msg("kernel_info_request"))  # raw send: the wake-up is lost


@pytest.mark.asyncio
async def test_a_message_due_with_the_recheck_is_not_called_a_lost_wakeup(caplog, monkeypatch):
    """Output printed once a second lands as the reader's re-check falls due; its wake-up is
    on its way, so nothing was lost and nothing is logged. Here the loop is held past the
    re-check while the message lands: the wake-up and the timer are due in the same turn."""
    monkeypatch.setattr(channels, "REARM_INTERVAL", 0.2)
    session = Session(key=b"k")
    seen, got, handle = collector()

    with dealer_and_router() as (dealer, router):
        channel = Channel(dealer, session)
        reader = asyncio.ensure_future(read_forever(channel, handle, "test"))
        try:
            channel.send(session.msg("kernel_info_request"))
            ident = (await router.recv_multipart())[0]
            for _ in range(5):
                got.clear()
                await asyncio.sleep(0.05)  # the reader waits on the socket
                session.send(router, "kernel_info_reply", {"status": "ok"}, ident=ident)
                time.sleep(0.3)  # noqa: ASYNC251 -- the loop is busy past the re-check
                await asyncio.wait_for(got.wait(), 1)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    assert len(seen) == 5
    assert "re-check" not in caplog.text
