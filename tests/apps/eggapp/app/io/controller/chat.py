import os

from sioctl import Controller


class ChatController(Controller):
    def ping(self):
        message = self.ctx.args[0]
        self.ctx.socket.emit("res", f"Hi! I've got your message: {message}")

    def whoami(self):
        return {"id": self.ctx.socket.id, "slot": int(os.environ.get("SIOCTL_WORKER_SLOT", "-1"))}
