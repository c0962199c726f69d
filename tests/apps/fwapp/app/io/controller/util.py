from app.trace import trace


def echo(ctx):
    return list(ctx.args)


def disconnecting(ctx):
    trace(f"route disconnecting {ctx.namespace} rooms={sorted(ctx.socket.rooms)}")


def disconnect(ctx):
    trace(f"route disconnect {ctx.namespace}")


def on_error(ctx):
    trace(f"route error {ctx.event} {ctx.error}")
