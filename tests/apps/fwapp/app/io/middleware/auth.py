from app.trace import trace


def auth(app):
    def middleware(ctx, next):
        token = ctx.query.get("token") or (ctx.auth or {}).get("token")
        if token == "bad":
            raise PermissionError("bad token")
        if token == "silent":
            return  # no next(): the connection is refused
        ctx.socket.emit("welcome", {"greeting": app.config.custom["greeting"], "id": ctx.socket.id})
        trace(f"auth {ctx.query.get('tag', '-')} accepted")
        next()
        trace(f"auth {ctx.query.get('tag', '-')} after")

    return middleware
