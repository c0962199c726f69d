def auth(app):
    def middleware(ctx, next):
        # egg's example: say hello, go on, and note the disconnection afterwards.
        ctx.socket.emit("res", "connected!")
        next()
        print("disconnection!")

    return middleware
