from app.trace import trace


def trace_conn(app):
    async def middleware(ctx, next):
        tag = ctx.query.get("tag", "-")
        trace(f"conn {ctx.namespace} {tag} before")
        await next()
        trace(f"conn {ctx.namespace} {tag} after")

    return middleware
