import asyncio


def auth(app):
    async def middleware(ctx, next):
        if (ctx.auth or {}).get("token") == "bad":
            raise PermissionError("bad token")
        await ctx.socket.emit("welcome", {"id": ctx.socket.id})
        await asyncio.sleep(0)
        await next()

    return middleware
