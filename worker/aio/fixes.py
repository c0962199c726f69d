"""What the asyncio worker corrects in python-engineio until the protocol rules have their
async shell (issue 15's next step): one method, patched on the class in the worker process only.

``AsyncSocket.close`` does not wake a pending long-poll GET. The sync ``Socket.close`` puts
``None`` on the session's queue, which ends the GET with an empty answer at once; the async one
does not, so the GET waits for the ping timeout (20–25 s with the defaults): every long-polling
client's ``disconnect()`` hangs that long, and so does a drain that closes polling sessions
(docs/design.md §2b). The patch closes as before and then puts the ``None`` the sync class does.
"""

from __future__ import annotations

from typing import Any

from engineio.async_socket import AsyncSocket

_MARK = "_sioctl_wakes_poll"


def install() -> None:
    """Patch ``AsyncSocket.close`` (once per process)."""
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
