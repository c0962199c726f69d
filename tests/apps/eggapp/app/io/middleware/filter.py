def filter(app):
    def middleware(ctx, next):
        ctx.socket.emit("res", "packet received!")
        next()

    return middleware
