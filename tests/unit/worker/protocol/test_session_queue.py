"""worker/protocol/session_queue.py: the asyncio session queue behaves as an unbounded
asyncio.Queue for the calls python-engineio and the async shell make."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from engineio import packet

from sioctl.worker.protocol.session_queue import COMPACT_AT, SessionQueue

SERVER = SimpleNamespace(ping_interval=0.3, ping_interval_grace_period=0)


def test_items_come_out_in_order_and_empty_raises() -> None:
    async def scenario() -> list[int]:
        queue = SessionQueue(SERVER)
        for i in range(3 * COMPACT_AT):  # past the compaction of the taken head
            queue.put_nowait(i)
        out = [queue.get_nowait() for _ in range(2 * COMPACT_AT)]
        await queue.put(-1)
        out += [await queue.get() for _ in range(COMPACT_AT + 1)]
        with pytest.raises(asyncio.QueueEmpty):
            queue.get_nowait()
        assert queue.empty() and queue.qsize() == 0
        return out

    assert asyncio.run(scenario()) == [*range(3 * COMPACT_AT), -1]


def test_a_waiting_get_is_woken_and_a_cancelled_one_passes_the_item_on() -> None:
    async def scenario() -> tuple[object, object]:
        queue = SessionQueue(SERVER)
        first = asyncio.ensure_future(queue.get())
        second = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0)
        queue.put_nowait("a")
        first.cancel()  # woken, then cancelled before it ran: "a" goes to the other reader
        got = await second
        queue.put_nowait("b")
        return got, await queue.get()

    assert asyncio.run(scenario()) == ("a", "b")


def test_join_waits_for_every_item_to_be_done() -> None:
    async def scenario() -> list[str]:
        queue = SessionQueue(SERVER)
        seen: list[str] = []
        await queue.join()  # nothing queued: at once
        queue.put_nowait("x")
        queue.put_nowait(None)

        async def joiner() -> None:
            await queue.join()
            seen.append("joined")

        task = asyncio.ensure_future(joiner())
        await asyncio.sleep(0)
        for _ in range(2):
            queue.get_nowait()
            seen.append("took")
            await asyncio.sleep(0)
            queue.task_done()
        await task
        with pytest.raises(ValueError):
            queue.task_done()
        return seen

    assert asyncio.run(scenario()) == ["took", "took", "joined"]


def test_the_open_packet_advertises_the_exact_ping_interval() -> None:
    queue = SessionQueue(SERVER)
    queue.put_nowait(packet.Packet(packet.OPEN, {"sid": "s", "pingInterval": 0,
                                                 "pingTimeout": 1000, "upgrades": []}))
    assert queue.get_nowait().data["pingInterval"] == 300
