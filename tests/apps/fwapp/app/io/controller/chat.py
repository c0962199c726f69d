import os

from app.trace import trace

from sioctl.worker.framework import Controller


class ChatController(Controller):
    def ping(self):
        trace(f"controller ping {self.ctx.args[0]!r}")
        return {"pong": self.ctx.args[0]}

    def two_values(self):
        self.ctx.ack("first", "second")

    def boom(self):
        raise RuntimeError("controller boom")

    def whoami(self):
        return {
            "id": self.ctx.socket.id,
            "slot": int(os.environ.get("SIOCTL_WORKER_SLOT", "-1")),
            "pid": os.getpid(),
            "session": dict(self.ctx.session),
            "namespace": self.ctx.namespace,
            "remote_addr": self.ctx.request.get("REMOTE_ADDR"),
        }

    def remember(self):
        self.ctx.session["remembered"] = self.ctx.args[0]
        self.ctx.session.save()
        return "saved"

    def join(self):
        self.ctx.socket.join(self.ctx.args[0])
        return sorted(self.ctx.socket.rooms)

    def to_room(self):
        room, message = self.ctx.args
        self.ctx.socket.to(room).emit("said", message)
        return "sent"

    def shout(self):
        self.ctx.socket.broadcast.emit("shouted", self.ctx.args[0])
        return "sent"
