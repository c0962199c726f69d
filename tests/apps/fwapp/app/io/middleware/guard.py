def guard(app):
    def middleware(ctx, next):
        if ctx.event == "blocked":
            return  # dropped: no next()
        if ctx.event == "boom_in_middleware":
            raise ValueError("middleware boom")
        next()

    return middleware
