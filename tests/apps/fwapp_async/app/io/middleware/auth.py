# fwapp's middleware written for the asyncio engine (async def, await next()): the symlinked
# files (config, router, trace, util, guard) are fwapp's own, so both apps behave alike.
from app.trace import trace


def auth(app):
    async def middleware(ctx, next):
        token = ctx.query.get("token") or (ctx.auth or {}).get("token")
        if token == "bad":
            raise PermissionError("bad token")
        if token == "silent":
            return  # no next(): the connection is refused
        await ctx.socket.emit("welcome", {"greeting": app.config.custom["greeting"],
                                          "id": ctx.socket.id})
        trace(f"auth {ctx.query.get('tag', '-')} accepted")
        await next()
        trace(f"auth {ctx.query.get('tag', '-')} after")

    return middleware
