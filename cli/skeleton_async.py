'''``sioctl init --engine asyncio``: the skeleton's controller and middleware written for the
asyncio engine (``async def`` actions, middleware that ``await next()``, awaited
``ctx.socket`` calls), as in egg-socket.io's examples. The rest of the skeleton is shared
(:mod:`.skeleton`); the engine probe serves an app directory holding ``async def`` on asyncio.
'''

from __future__ import annotations

CONTROLLER = '''\
\"\"\"The chat controller: each async function is an action taking ctx (see app/router.py).

A controller file may instead hold one Controller subclass (from sioctl import Controller),
whose methods (async def too) are the actions and reach the context as self.ctx.
"""

import logging

log = logging.getLogger(__name__)


async def ping(ctx):
    # The return value answers the client's ack (socket.emit("ping", x, callback)).
    return {"pong": ctx.args[0] if ctx.args else None}


async def join(ctx):
    room = ctx.args[0] if ctx.args else "lobby"
    # ctx.socket's calls that reach the server are coroutines on asyncio: await them.
    await ctx.socket.join(room)
    return {"joined": room}


async def message(ctx):
    data = ctx.args[0] if ctx.args else None
    if not isinstance(data, dict) or "text" not in data:
        # Reaches the client as an "error" event; the socket stays connected.
        raise ValueError('expected {"room": ..., "text": ...}')
    room = data.get("room", "lobby")
    # to(room) skips the sender: everyone else in the room gets the message.
    await ctx.socket.to(room).emit("message", {"from": ctx.socket.id, "room": room,
                                               "text": data["text"]})


async def bye(ctx):
    # The socket is gone by now: nothing to answer, only to note.
    log.info("%s left %s", ctx.socket.id, ctx.namespace)
'''

AUTH = '''\
\"\"\"Connection middleware: every socket must bring a token."""


def auth(app):
    async def middleware(ctx, next):
        payload = ctx.auth if isinstance(ctx.auth, dict) else {}
        token = ctx.query.get("token") or payload.get("token")
        if not token:
            # Refuses the connection; the client's connect_error gets this message.
            raise PermissionError("token required: connect with ?token=... "
                                  "or auth={'token': ...}")
        # Check the token against your users here (await your database: this is asyncio);
        # the skeleton takes any non-empty one.
        await next()
        # Code after await next() runs when the socket disconnects.

    return middleware
'''

LOG_PACKET = '''\
\"\"\"Packet middleware: log each incoming event and how long its controller took."""

import logging
import time

log = logging.getLogger(__name__)


def log_packet(app):
    async def middleware(ctx, next):
        started = time.monotonic()
        log.info("%s %s from %s", ctx.namespace, ctx.event, ctx.socket.id)
        await next()
        # After await next() the routed controller has finished.
        log.info("%s %s done in %.1f ms", ctx.namespace, ctx.event,
                 (time.monotonic() - started) * 1000)

    return middleware
'''
