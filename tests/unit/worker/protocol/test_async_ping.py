"""worker/protocol/async_ping.py: a server's pings from one loop timer, each at its own time,
in the order scheduled; a cancelled one is not sent and lets go of its session at once."""

from __future__ import annotations

import asyncio
import types
from typing import Any

from sioctl.worker.protocol.async_ping import PingEntry, PingTimers


class Session:
    def __init__(self, name: str, fired: list[tuple[str, float]]) -> None:
        self.name = name
        self._fired = fired

    def _ping_now(self) -> None:
        self._fired.append((self.name, asyncio.get_running_loop().time()))


def test_pings_fire_at_their_time_in_order_and_cancelled_ones_do_not() -> None:
    async def run() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        server = types.SimpleNamespace()
        timers = PingTimers.of(server)
        assert PingTimers.of(server) is timers
        fired: list[tuple[str, float]] = []
        start = loop.time()
        dues = {name: start + 0.05 * (n + 1) for n, name in enumerate("abcd")}
        handles = {name: timers.call_at(due, Session(name, fired))
                   for name, due in dues.items()}
        handles["b"].cancel()
        assert handles["b"].session is None  # the session is let go of at once
        # An earlier time than the last one scheduled: a timer of its own, still on time.
        early = timers.call_at(start + 0.01, Session("early", fired))
        await asyncio.sleep(0.4)
        return {"fired": fired, "dues": dues, "early": early, "handles": handles,
                "left": len(timers._entries), "armed": timers._handle}

    seen = asyncio.run(run())
    names = [name for name, _ in seen["fired"]]
    assert names == ["early", "a", "c", "d"]
    for name, at in seen["fired"]:
        if name != "early":
            assert at >= seen["dues"][name]  # never before its time
    assert not isinstance(seen["early"], PingEntry)
    assert all(isinstance(h, PingEntry) for h in seen["handles"].values())
    assert seen["left"] == 0 and seen["armed"] is None  # no timer left once all are done
