import os

from sioctl import Controller


def worker_name():
    return f"slot {os.environ.get('SIOCTL_WORKER_SLOT', '?')} (pid {os.getpid()})"


class ChatController(Controller):
    def say(self):
        text = str(self.ctx.args[0] if self.ctx.args else "")[:500]
        message = {"from": self.ctx.session["name"], "worker": worker_name(), "text": text}
        # Every worker's clients get it, through Redis.
        self.app.sio.emit("said", message)
        return "ok"

    def leave(self):
        pass  # the nickname middleware's after-half announces it
