"""The reader of an established asyncio websocket runs a message's handling in the protocol's
callback and, should that handling wait after all, hands the rest to a task
(worker/protocol/async_ws_reader.py, ``_resumed``): the rest must run as a task would run it."""

from __future__ import annotations

import asyncio
import logging
import types
from typing import Any

import pytest
import socketio

from sioctl.worker import protocol
from sioctl.worker.protocol.async_socketio import events_dispatch_inline
from sioctl.worker.protocol.async_ws_reader import ProtocolReader, _resumed


def started_in_callback(coro: Any) -> asyncio.Future[Any]:
    """Step ``coro`` in a loop callback (no task current, as in ``data_received``); the
    future's result is what it returned there, or the task that runs its rest."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[Any] = loop.create_future()

    def step() -> None:
        assert asyncio.current_task() is None
        try:
            waited = coro.send(None)
        except StopIteration as stop:
            outcome.set_result(stop.value)
            return
        outcome.set_result(loop.create_task(_resumed(coro, waited)))

    loop.call_soon(step)
    return outcome


def test_a_handling_that_does_not_wait_ends_in_the_callback() -> None:
    async def handling(done: asyncio.Future[bool]) -> bool:
        return await done  # already done: no wait

    async def main() -> Any:
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        done.set_result(True)
        return await started_in_callback(handling(done))

    assert asyncio.run(main()) is True


def test_a_handling_that_waits_is_finished_by_a_task() -> None:
    seen: list[str] = []

    async def handling(gate: asyncio.Future[str]) -> bool:
        seen.append(await gate)
        await asyncio.sleep(0)  # a bare yield
        seen.append(await asyncio.sleep(0.01, "slept"))
        return True

    async def main() -> Any:
        gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        task = await started_in_callback(handling(gate))
        assert isinstance(task, asyncio.Task) and not task.done()
        gate.set_result("opened")
        return await task

    assert asyncio.run(main()) is True
    assert seen == ["opened", "slept"]


def test_the_awaited_futures_failure_reaches_the_handling() -> None:
    async def handling(gate: asyncio.Future[str]) -> bool:
        try:
            await gate
        except KeyError:
            return False
        return True

    async def main() -> Any:
        gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        task = await started_in_callback(handling(gate))
        gate.set_exception(KeyError("no"))
        return await task

    assert asyncio.run(main()) is False


def test_cancelling_the_task_cancels_what_the_handling_waits_for() -> None:
    cleaned: list[bool] = []

    async def handling(gate: asyncio.Future[str]) -> bool:
        try:
            await gate
        finally:
            cleaned.append(gate.cancelled())
        return True

    async def main() -> None:
        gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        task = await started_in_callback(handling(gate))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert cleaned == [True]


def test_an_end_hook_given_after_the_end_runs_at_once() -> None:
    """The reader's end hooks (the access log's line) run once its end is done; a hook given
    after that runs at once instead of never (the docstring's promise)."""
    ran: list[str] = []

    async def finish() -> None:
        ran.append("finished")

    protocol = types.SimpleNamespace(sioctl_request_ended=lambda: ran.append("request ended"))
    session = types.SimpleNamespace(server=types.SimpleNamespace(logger=logging.getLogger()))

    async def main() -> None:
        reader = ProtocolReader(session, None, protocol, None, finish)
        reader.at_end(lambda: ran.append("early hook"))
        reader.cancel()  # the read deadline ran out: the end runs in a task
        for _ in range(5):
            await asyncio.sleep(0)
        reader.at_end(lambda: ran.append("late hook"))

    asyncio.run(main())
    assert ran == ["finished", "early hook", "request ended", "late hook"]


class _OwnMessage(socketio.AsyncServer):
    async def _handle_eio_message(self, eio_sid: str, data: Any) -> Any:
        return await super()._handle_eio_message(eio_sid, data)


class _OwnEvent(socketio.AsyncServer):
    async def _handle_event(self, *args: Any) -> Any:
        return await super()._handle_event(*args)


def test_events_are_read_in_the_callback_only_on_python_socketios_own_dispatch() -> None:
    """A Socket.IO EVENT message is given to the session in the protocol's callback (no task
    of the reader's, reads not paused) only when python-socketio's own path dispatches it
    through sioctl's rules, starting the handler in a task of its own: not when the app's
    class changes that path, nor with async_handlers off (the handler would run inline)."""
    def inline(server: socketio.AsyncServer) -> bool:
        protocol.install(server)
        return events_dispatch_inline(server.eio)

    assert inline(socketio.AsyncServer(async_mode="asgi"))
    assert not inline(socketio.AsyncServer(async_mode="asgi", async_handlers=False))
    assert not inline(_OwnMessage(async_mode="asgi"))
    assert not inline(_OwnEvent(async_mode="asgi"))
    plain = socketio.AsyncServer(async_mode="asgi")
    protocol.install(plain)
    plain.eio.handlers["message"] = lambda sid, data: None  # not the server's own handler
    assert not events_dispatch_inline(plain.eio)
