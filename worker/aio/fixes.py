"""What the asyncio worker corrects in python-engineio until the protocol rules have their
async shell (issue 15's next step), patched in the worker process only.

``AsyncSocket.close`` does not wake a pending long-poll GET. The sync ``Socket.close`` puts
``None`` on the session's queue, which ends the GET with an empty answer at once; the async one
does not, so the GET waits for the ping timeout (20–25 s with the defaults): every long-polling
client's ``disconnect()`` hangs that long, and so does a drain that closes polling sessions
(docs/design.md §2b). The patch closes as before and then puts the ``None`` the sync class does.

The ASGI driver's ``translate_request`` sets ``REMOTE_ADDR`` to ``127.0.0.1`` whoever the client
is (and ``REMOTE_PORT`` to 0): connect handlers written for the eventlet engine, which read
``environ["REMOTE_ADDR"]``, would see every client as 127.0.0.1. The driver's table entry is
wrapped so that both come from the ASGI scope's ``client``: the address the master named
(worker/aio/serving.py, ``ClientAddresses``).
"""

from __future__ import annotations

from typing import Any

import engineio.async_drivers.asgi
from engineio.async_socket import AsyncSocket

_MARK = "_sioctl_wakes_poll"


def install() -> None:
    """Patch ``AsyncSocket.close`` and the ASGI driver's ``translate_request`` (once per
    process)."""
    _wake_poll_on_close()
    _client_in_environ()


def _client_in_environ() -> None:
    table = engineio.async_drivers.asgi._async
    original = table["translate_request"]
    if getattr(original, _MARK, False):
        return

    async def translate_request(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        environ = await original(scope, receive, send)
        client = scope.get("client")
        if environ and client:
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = str(client[0]), str(client[1])
        return environ

    setattr(translate_request, _MARK, True)
    table["translate_request"] = translate_request


def _wake_poll_on_close() -> None:
    original = AsyncSocket.close
    if getattr(original, _MARK, False):
        return

    async def close(self: Any, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        if self.closed or self.closing:
            return
        await original(self, wait=False, abort=abort, reason=reason)
        self.queue.put_nowait(None)  # the GET waiting in poll() answers now
        if wait:
            await self.queue.join()

    setattr(close, _MARK, True)
    AsyncSocket.close = close
