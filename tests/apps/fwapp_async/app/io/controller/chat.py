# fwapp's controller on the asyncio engine: ctx.socket's calls and session.save() are awaited.
import os

from app.trace import trace

from sioctl.worker.framework import Controller


class ChatController(Controller):
    async def ping(self):
        trace(f"controller ping {self.ctx.args[0]!r}")
        return {"pong": self.ctx.args[0]}

    async def two_values(self):
        self.ctx.ack("first", "second")

    async def boom(self):
        raise RuntimeError("controller boom")

    async def whoami(self):
        return {
            "id": self.ctx.socket.id,
            "slot": int(os.environ.get("SIOCTL_WORKER_SLOT", "-1")),
            "pid": os.getpid(),
            "session": dict(self.ctx.session),
            "namespace": self.ctx.namespace,
            "remote_addr": self.ctx.request.get("REMOTE_ADDR"),
        }

    async def remember(self):
        self.ctx.session["remembered"] = self.ctx.args[0]
        await self.ctx.session.save()
        return "saved"

    async def join(self):
        await self.ctx.socket.join(self.ctx.args[0])
        return sorted(self.ctx.socket.rooms)

    async def to_room(self):
        room, message = self.ctx.args
        await self.ctx.socket.to(room).emit("said", message)
        return "sent"

    async def shout(self):
        await self.ctx.socket.broadcast.emit("shouted", self.ctx.args[0])
        return "sent"
