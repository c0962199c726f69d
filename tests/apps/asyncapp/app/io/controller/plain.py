# A plain controller: the asyncio engine calls it as it is.
def shout(ctx):
    return ctx.args[0].upper()
