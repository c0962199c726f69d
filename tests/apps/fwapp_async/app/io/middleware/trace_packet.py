from app.trace import trace


def trace_packet(app):
    async def middleware(ctx, next):
        trace(f"packet {ctx.event} before")
        await next()
        trace(f"packet {ctx.event} after")

    return middleware
