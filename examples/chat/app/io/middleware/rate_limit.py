"""Packet middleware: at most 5 messages a second per connection; the rest are dropped."""

import time


def rate_limit(app):
    def middleware(ctx, next):
        now = time.monotonic()
        recent = [t for t in ctx.session.get("sent", []) if now - t < 1.0]
        if len(recent) >= 5:
            return  # dropped: no next()
        ctx.session["sent"] = recent + [now]
        next()

    return middleware
