import time


def timing(app):
    async def middleware(ctx, next):
        started = time.monotonic()
        await next()
        ctx.elapsed = time.monotonic() - started

    return middleware
