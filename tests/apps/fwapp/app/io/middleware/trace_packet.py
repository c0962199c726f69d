from app.trace import trace


def trace_packet(app):
    def middleware(ctx, next):
        trace(f"packet {ctx.event} before")
        next()
        trace(f"packet {ctx.event} after")

    return middleware
