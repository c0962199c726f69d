"""worker/aio/ws_protocol.py's LazyEvent: the asyncio.Event calls uvicorn's websocket protocol
makes on ``writable`` (its flow control of writes), without a waiters' deque per connection."""

from __future__ import annotations

import asyncio

import pytest

from sioctl.worker.aio.ws_protocol import LazyEvent


def test_a_set_event_returns_at_once_and_holds_no_waiters() -> None:
    async def run() -> None:
        event = LazyEvent()
        event.set()
        assert event.is_set()
        assert await event.wait() is True
        assert event._waiters is None

    asyncio.run(run())


def test_set_wakes_every_waiter_and_clear_blocks_the_next_wait() -> None:
    async def run() -> None:
        event = LazyEvent()
        waiters = [asyncio.ensure_future(event.wait()) for _ in range(3)]
        await asyncio.sleep(0)
        assert not any(w.done() for w in waiters)
        event.set()
        assert await asyncio.gather(*waiters) == [True, True, True]
        event.clear()
        later = asyncio.ensure_future(event.wait())
        await asyncio.sleep(0)
        assert not later.done()
        event.set()
        assert await later is True
        assert event._waiters is None

    asyncio.run(run())


def test_a_cancelled_waiter_leaves_the_others_waiting() -> None:
    async def run() -> None:
        event = LazyEvent()
        first = asyncio.ensure_future(event.wait())
        second = asyncio.ensure_future(event.wait())
        await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert not second.done()
        event.set()
        assert await second is True
        assert event._waiters is None

    asyncio.run(run())
