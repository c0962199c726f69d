import os

from sioctl import Controller


class Chat(Controller):
    async def echo(self):
        await self.ctx.socket.emit("echoed", *self.ctx.args)
        return {"echo": self.ctx.args}

    async def whoami(self):
        return {"id": self.ctx.socket.id, "pid": os.getpid(), "session": dict(self.ctx.session)}
