"""Connection middleware: every chatter needs a name; everyone hears who comes and goes."""


def nickname(app):
    def middleware(ctx, next):
        name = (ctx.query.get("name") or "").strip()[:20]
        if not name:
            raise ValueError("pick a name first")
        ctx.session["name"] = name
        ctx.socket.broadcast.emit("said", {"from": "*", "text": f"{name} joined"})
        next()  # returns when this chatter disconnects
        ctx.socket.broadcast.emit("said", {"from": "*", "text": f"{name} left"})

    return middleware
